package vastauth

import (
	"encoding/base64"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cookiePairs lists each "name=value" element of Cookie header lines the
// way CookieValue reads them (for the properties below).
func cookiePairs(headers []string) [][2]string {
	var out [][2]string
	for _, line := range headers {
		for _, part := range strings.Split(line, ";") {
			if k, v, ok := strings.Cut(part, "="); ok {
				v = trimSpace(v)
				if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				out = append(out, [2]string{trimSpace(k), v})
			}
		}
	}
	return out
}

func firstValue(pairs [][2]string, name string) (string, bool) {
	for _, p := range pairs {
		if p[0] == name {
			return p[1], true
		}
	}
	return "", false
}

func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; C.1_auth_token=abc; b=2", "", "C.1_auth_token")
	f.Add("C.1_auth_token=\"q\"", "x=C.1_auth_token=abc", "C.1_auth_token")
	f.Add("xtok=1;tok=2", "tok=3", "tok")
	f.Fuzz(func(t *testing.T, h1, h2, name string) {
		headers := []string{h1, h2}
		v, found := CookieValue(headers, name)
		// It finds exactly the first element whose whole name is name.
		want, wantFound := firstValue(cookiePairs(headers), name)
		if name == "" {
			wantFound, want = false, ""
		}
		if found != wantFound || v != want {
			t.Fatalf("CookieValue(%q, %q) = %q, %v; want %q, %v", headers, name, v, found, want, wantFound)
		}
		out, changed := StripCookie(headers, name)
		if changed != found {
			t.Fatalf("StripCookie changed=%v but found=%v", changed, found)
		}
		if _, still := CookieValue(out, name); still {
			t.Fatalf("StripCookie(%q) = %q still holds %q", headers, out, name)
		}
		// Every other cookie keeps its first value.
		before, after := cookiePairs(headers), cookiePairs(out)
		for _, p := range before {
			if p[0] == name || p[0] == "" {
				continue
			}
			b, _ := firstValue(before, p[0])
			if a, ok := firstValue(after, p[0]); !ok || a != b {
				t.Fatalf("StripCookie(%q) lost cookie %q=%q: %q", headers, p[0], b, out)
			}
		}
	})
}

func FuzzQueryParam(f *testing.F) {
	f.Add("a=1&token=abc&b=2")
	f.Add("tok%65n=x&token=y")
	f.Add("token=%zz&a=%20")
	f.Add("a=1&&b=2;c=3")
	f.Fuzz(func(t *testing.T, raw string) {
		v, found := queryParam(raw, "token")
		stripped, changed := StripQueryParam(raw, "token")
		if changed != found {
			t.Fatalf("StripQueryParam changed=%v, queryParam found=%v", changed, found)
		}
		if _, still := queryParam(stripped, "token"); still {
			t.Fatalf("StripQueryParam(%q) = %q still has a token", raw, stripped)
		}
		if len(stripped) > len(raw) {
			t.Fatalf("StripQueryParam grew %q to %q", raw, stripped)
		}
		vals, err := url.ParseQuery(raw)
		if err != nil {
			return // net/url refuses it; only the properties above apply
		}
		if want := vals["token"]; found != (len(want) > 0) || (found && v != want[0]) {
			t.Fatalf("queryParam(%q) = %q, %v; net/url says %q", raw, v, found, want)
		}
		delete(vals, "token")
		got, err := url.ParseQuery(stripped)
		if err != nil {
			t.Fatalf("stripping %q produced an unparsable %q: %v", raw, stripped, err)
		}
		if len(vals) == 0 && len(got) == 0 {
			return
		}
		if !reflect.DeepEqual(got, vals) {
			t.Fatalf("StripQueryParam(%q) = %q: parses to %v, want %v", raw, stripped, got, vals)
		}
	})
}

func FuzzDecodeBasic(f *testing.F) {
	f.Add("vastai", "secret")
	f.Add("", "a:b:c")
	f.Add("ü", "\x00")
	f.Fuzz(func(t *testing.T, user, pass string) {
		payload := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		u, p, ok := decodeBasic(payload)
		if strings.Contains(user, ":") {
			// The first colon splits: the user part never has one.
			if ok && strings.Contains(u, ":") {
				t.Fatalf("user %q contains a colon", u)
			}
			return
		}
		if len(payload) > maxBasicPayload {
			if ok {
				t.Fatal("oversized payload accepted")
			}
			return
		}
		if !ok || u != user || p != pass {
			t.Fatalf("decodeBasic(encode(%q:%q)) = %q, %q, %v", user, pass, u, p, ok)
		}
		scheme, cred := parseAuthorization("basic  " + payload + " ")
		if scheme != SchemeBasic || cred != payload {
			t.Fatalf("parseAuthorization lost the payload: %d %q", scheme, cred)
		}
	})
}

func FuzzCheck(f *testing.F) {
	a, err := New(Params{Username: "vastai", Secrets: []string{"s3cret-password", "open-button-token"}, Salt: testSalt})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Add("open-button-token", true, "", false, "")
	f.Add("", false, a.IssueSession(now), true, "Bearer s3cret-password")
	f.Add("", false, "s3cret-password", true, "Basic dmFzdGFpOnMzY3JldC1wYXNzd29yZA==")
	f.Add("x", true, "v2.1.", true, "Basic !!")
	f.Fuzz(func(t *testing.T, token string, hasToken bool, cookie string, hasCookie bool, authz string) {
		c := Credentials{Token: token, HasToken: hasToken, Cookie: cookie, HasCookie: hasCookie, Authorization: authz}
		r := a.Check(c, now)
		isSecret := func(s string) bool { return s == "s3cret-password" || s == "open-button-token" }
		scheme, cred := parseAuthorization(authz)
		user, pass, basicOK := decodeBasic(cred)
		// Accepted only through a credential that really is a secret.
		want := map[Method]bool{
			MethodToken:        hasToken && isSecret(token),
			MethodSession:      hasCookie && a.VerifySession(cookie, now) == SessionValid,
			MethodCookieSecret: hasCookie && a.VerifySession(cookie, now) == SessionInvalid && isSecret(cookie),
			MethodBearer:       scheme == SchemeBearer && isSecret(cred),
			MethodBasic:        scheme == SchemeBasic && basicOK && user == "vastai" && isSecret(pass),
		}
		any := false
		for m, w := range want {
			if r.Accepted.Has(m) != w {
				t.Fatalf("%+v: method %v accepted=%v, want %v", c, m, r.Accepted.Has(m), w)
			}
			any = any || w
		}
		if (r.Verdict == Accepted) != any {
			t.Fatalf("%+v: verdict %d", c, r.Verdict)
		}
		if r.Verdict == NoCredentials && (hasToken || scheme == SchemeBearer || scheme == SchemeBasic) {
			t.Fatalf("%+v: a presented credential was ignored", c)
		}
	})
}

func FuzzVerifySession(f *testing.F) {
	a, err := New(Params{Username: "vastai", Secrets: []string{"s3cret"}, Salt: testSalt, SessionTTL: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Add(a.IssueSession(now))
	f.Add(a.IssueSession(now.Add(-2 * time.Hour)))
	f.Add("v2.1800003600.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, v string) {
		st := a.VerifySession(v, now)
		if st == SessionInvalid {
			return
		}
		// Only the exact value we would issue for that expiry and id is
		// genuine.
		expText, rest, _ := strings.Cut(strings.TrimPrefix(v, sessionPrefix), ".")
		id, _, _ := strings.Cut(rest, ".")
		exp, err := strconv.ParseInt(expText, 10, 64)
		if err != nil {
			t.Fatalf("%q accepted with an unparsable expiry", v)
		}
		if again := a.sessionValue(exp, id); again != v {
			t.Fatalf("%q accepted but the genuine value for that expiry and id is %q", v, again)
		}
		if (st == SessionValid) != (now.Unix() < exp) {
			t.Fatalf("%q: state %d at %d, expiry %d", v, st, now.Unix(), exp)
		}
	})
}
