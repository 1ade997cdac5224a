package vastauth

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// Issue 14 item 9: our secret reached the app in Authorization forms the
// handler did not recognise when a cookie authenticated the request. Every
// form that carries a secret must be recognised; an app's own header must
// not be.
func TestCarriesSecret(t *testing.T) {
	const pw = "user chosen:pass"
	a, err := New(Params{Username: "vastai", Secrets: []string{pw, testToken}, Salt: testSalt})
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, h := range []string{
		"Bearer " + testToken,
		"bearer " + testToken,
		"Bearer\t" + testToken,
		"Bearer  " + testToken + "  ",
		`Bearer "` + testToken + `"`,
		"Bearer '" + testToken + "'",
		"Token " + testToken,
		"token " + testToken,
		testToken,
		"Basic root:" + testToken,
		"Basic " + b64("root:"+testToken),
		"Basic " + b64("vastai:"+pw),
		"Basic " + strings.TrimRight(b64("x:"+testToken), "="),
		"Basic " + base64.URLEncoding.EncodeToString([]byte("x:"+testToken)),
		"Basic " + b64(testToken),
		"Bearer " + pw,
		`Bearer "` + pw + `"`,
		"Basic root:" + pw,
		`Digest username="vastai", realm="x", password="` + testToken + `"`,
		"Custom token=" + testToken + ", other=1",
		"Bearer " + url.PathEscape(pw),
		"Bearer%20" + testToken,
		"Bearer " + strings.ReplaceAll(url.QueryEscape(pw), "+", "%20"),
		"Bearer " + testToken + "," + "extra",
	} {
		if !a.CarriesSecret(h) {
			t.Errorf("CarriesSecret(%q) = false", h)
		}
	}
	for _, h := range []string{
		"",
		"Bearer app-key",
		"token jupyter-own-token-123",
		"Basic " + b64("alice:her-own-password"),
		"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
		"Bearer " + testToken[:len(testToken)-1],
		"Bearer " + testToken + "x",
		`Digest username="a", realm="b", nonce="c", uri="/", response="d"`,
	} {
		if a.CarriesSecret(h) {
			t.Errorf("CarriesSecret(%q) = true", h)
		}
	}
	// A header too fragmented to check is treated as carrying one.
	if !a.CarriesSecret("X " + strings.Repeat("a,", 400)) {
		t.Error("an unbounded header was passed unchecked")
	}
}

func FuzzCarriesSecret(f *testing.F) {
	const secret = "s3cret-Value"
	set := NewSecretSet([]string{secret})
	f.Add("Bearer ", "")
	f.Add("Basic root:", "")
	f.Add(`Token "`, `"`)
	f.Fuzz(func(t *testing.T, prefix, suffix string) {
		// Whatever surrounds it, a secret standing as its own word (set off
		// by separators or the ends) is found.
		cut := func(r rune) bool { return strings.ContainsRune(headerSeparators+":", r) }
		if (prefix != "" && !cut(rune(prefix[len(prefix)-1]))) || (suffix != "" && !cut(rune(suffix[0]))) {
			return
		}
		if strings.ContainsRune(prefix+suffix, '%') {
			return // percent-decoding may merge the secret with its neighbours
		}
		h := prefix + secret + suffix
		if !set.Carries(h) {
			t.Fatalf("Carries(%q) = false", h)
		}
	})
}

// TestCarriesSecretIssue20Forms: the three Authorization forms issue 20
// found reaching the app are now seen as carrying the secret.
func TestCarriesSecretIssue20Forms(t *testing.T) {
	const secret = "s3cr3t-Token-value-0123456789abcdef"
	set := NewSecretSet([]string{secret})
	for _, v := range []string{
		"Bearer " + secret + `\`,
		"AWS4-HMAC-SHA256 Credential=" + secret + "/20261206/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+secret+"\x00")),
	} {
		if !set.Carries(v) {
			t.Errorf("Carries(%q) = false, want true", v)
		}
	}
	for _, v := range []string{"Bearer other-token\\", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/s3/aws4_request"} {
		if set.Carries(v) {
			t.Errorf("Carries(%q) = true, want false", v)
		}
	}
}

func TestStripQuery(t *testing.T) {
	const secret = "s3cret-Value-0123456789"
	set := NewSecretSet([]string{secret})
	for _, c := range []struct {
		in, want string
		changed  bool
	}{
		{"a=1&b=2", "a=1&b=2", false},
		{"a=1;b=2", "a=1;b=2", false},
		{"Token=" + secret, "", true},
		{"x=1&token%5B%5D=" + secret + "&y=2", "x=1&y=2", true},
		{"x=1;token=" + secret, "x=1", true},
		{"auth=Bearer%20" + secret, "", true},
		{"name=" + secret + "x", "name=" + secret + "x", false}, // another word
	} {
		got, changed := set.StripQuery(c.in)
		if got != c.want || changed != c.changed {
			t.Errorf("StripQuery(%q) = %q, %v; want %q, %v", c.in, got, changed, c.want, c.changed)
		}
	}
}

// FuzzStripQuery: what StripQuery keeps never carries the secret, and a
// query it does not change is returned as written.
func FuzzStripQuery(f *testing.F) {
	const secret = "s3cret-Value-0123456789"
	set := NewSecretSet([]string{secret})
	f.Add("a=1&token=" + secret)
	f.Add("x;T=" + secret + "&y")
	f.Fuzz(func(t *testing.T, q string) {
		got, changed := set.StripQuery(q)
		if !changed && got != q {
			t.Fatalf("unchanged but rewritten: %q → %q", q, got)
		}
		for _, pair := range strings.FieldsFunc(got, func(r rune) bool { return r == '&' || r == ';' }) {
			if _, v, ok := strings.Cut(pair, "="); ok && set.carries(v, uriSeparators) {
				t.Fatalf("kept %q of %q", pair, q)
			}
		}
	})
}
