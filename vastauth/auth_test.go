package vastauth

import (
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	testPassword = "correct horse battery staple"
	testToken    = "0123456789abcdef0123456789abcdef"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var testSalt = []byte("0123456789abcdef-test-salt")

func newTestAuth(t testing.TB) *Authenticator {
	t.Helper()
	a, err := New(Params{Username: "vastai", Secrets: []string{testPassword, "", testToken}, Salt: testSalt})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestNewErrors(t *testing.T) {
	for _, secrets := range [][]string{nil, {}, {"", ""}} {
		if _, err := New(Params{Secrets: secrets, Salt: testSalt}); err != ErrNoSecret {
			t.Errorf("New(%q) error = %v, want ErrNoSecret", secrets, err)
		}
	}
	if _, err := New(Params{Secrets: []string{"x"}, Salt: []byte("short")}); err != ErrShortSalt {
		t.Errorf("short salt: %v, want ErrShortSalt", err)
	}
}

func TestCheck(t *testing.T) {
	a := newTestAuth(t)
	session := a.IssueSession(t0)
	expired := a.IssueSession(t0.Add(-a.TTL() - time.Second))
	other, _ := New(Params{Username: "vastai", Secrets: []string{"another secret"}, Salt: testSalt})
	foreign := other.IssueSession(t0)
	tampered := session[:len(session)-1] + map[bool]string{true: "A", false: "B"}[session[len(session)-1] != 'A']

	tests := []struct {
		name    string
		c       Credentials
		verdict Verdict
		issue   bool
	}{
		{"nothing", Credentials{}, NoCredentials, false},
		{"token password", Credentials{Token: testPassword, HasToken: true}, Accepted, true},
		{"token open button", Credentials{Token: testToken, HasToken: true}, Accepted, true},
		{"token wrong", Credentials{Token: "nope", HasToken: true}, Rejected, false},
		{"token empty", Credentials{Token: "", HasToken: true}, Rejected, false},
		{"token prefix of secret", Credentials{Token: testToken[:10], HasToken: true}, Rejected, false},
		{"session", Credentials{Cookie: session, HasCookie: true}, Accepted, false},
		{"session expired", Credentials{Cookie: expired, HasCookie: true}, NoCredentials, false},
		{"session tampered", Credentials{Cookie: tampered, HasCookie: true}, Rejected, false},
		{"session of other secrets", Credentials{Cookie: foreign, HasCookie: true}, Rejected, false},
		{"raw secret cookie", Credentials{Cookie: testToken, HasCookie: true}, Accepted, false},
		{"wrong cookie", Credentials{Cookie: "x", HasCookie: true}, Rejected, false},
		{"bearer", Credentials{Authorization: "Bearer " + testToken}, Accepted, false},
		{"bearer lower case", Credentials{Authorization: "bearer " + testPassword}, Accepted, false},
		{"bearer wrong", Credentials{Authorization: "Bearer nope"}, Rejected, false},
		{"basic", Credentials{Authorization: basic("vastai", testPassword)}, Accepted, true},
		{"basic token", Credentials{Authorization: basic("vastai", testToken)}, Accepted, true},
		{"basic wrong user", Credentials{Authorization: basic("root", testPassword)}, Rejected, false},
		{"basic wrong password", Credentials{Authorization: basic("vastai", "nope")}, Rejected, false},
		{"basic garbage", Credentials{Authorization: "Basic !!!"}, Rejected, false},
		{"other scheme is the app's", Credentials{Authorization: "token jupyter123"}, NoCredentials, false},
		{"cookie ok, app's own bearer kept", Credentials{Cookie: session, HasCookie: true, Authorization: "Bearer app-key"}, Accepted, false},
		{"wrong token but valid cookie", Credentials{Token: "old", HasToken: true, Cookie: session, HasCookie: true}, Accepted, false},
		{"expired session and wrong bearer", Credentials{Cookie: expired, HasCookie: true, Authorization: "Bearer x"}, Rejected, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.Check(tt.c, t0)
			if r.Verdict != tt.verdict {
				t.Errorf("verdict = %d, want %d (result %+v)", r.Verdict, tt.verdict, r)
			}
			if r.IssueSession() != tt.issue {
				t.Errorf("IssueSession = %v, want %v", r.IssueSession(), tt.issue)
			}
		})
	}
}

func TestSessionLifetime(t *testing.T) {
	a := newTestAuth(t)
	v := a.IssueSession(t0)
	if strings.Contains(v, testToken) || strings.Contains(v, testPassword) {
		t.Fatalf("session value %q reveals a secret", v)
	}
	cases := []struct {
		at   time.Time
		want SessionState
	}{
		{t0, SessionValid},
		{t0.Add(a.TTL() - time.Second), SessionValid},
		{t0.Add(a.TTL()), SessionExpired},
		{t0.Add(10 * a.TTL()), SessionExpired},
	}
	for _, c := range cases {
		if got := a.VerifySession(v, c.at); got != c.want {
			t.Errorf("VerifySession at %v = %d, want %d", c.at.Sub(t0), got, c.want)
		}
	}
	// Changing a secret revokes sessions; the order of secrets does not matter.
	same, _ := New(Params{Username: "someone else", Secrets: []string{testToken, testPassword}, Salt: testSalt})
	if same.VerifySession(v, t0) != SessionValid {
		t.Error("same secrets in another order must accept the session")
	}
	changed, _ := New(Params{Username: "vastai", Secrets: []string{testPassword, testToken + "x"}, Salt: testSalt})
	if changed.VerifySession(v, t0) != SessionInvalid {
		t.Error("changing a secret must revoke the session")
	}
	// A forged expiry with the old MAC is refused.
	signed, mac, _ := cutLast(v, '.')
	_, id, _ := strings.Cut(strings.TrimPrefix(signed, sessionPrefix), ".")
	if a.VerifySession(sessionPrefix+"99999999999."+id+"."+mac, t0) != SessionInvalid {
		t.Error("a session whose expiry was edited must be invalid")
	}
	// So is one whose id was swapped for another session's.
	_, other, _ := strings.Cut(strings.TrimPrefix(a.IssueSession(t0), sessionPrefix), ".")
	otherID, _, _ := strings.Cut(other, ".")
	if a.VerifySession(strings.Replace(v, id, otherID, 1), t0) != SessionInvalid {
		t.Error("a session whose id was edited must be invalid")
	}
}

// Issue 14 item 11: the session key is salted per instance, so another
// instance that shares the secrets (the same template, the same
// WEB_PASSWORD) does not accept our cookies; before, the key came from the
// secrets alone.
func TestSessionFromAnotherInstanceIsRefused(t *testing.T) {
	a := newTestAuth(t)
	twin, err := New(Params{Username: "vastai", Secrets: []string{testPassword, testToken}, Salt: []byte("another-instance-salt-0123")})
	if err != nil {
		t.Fatal(err)
	}
	v := twin.IssueSession(t0)
	if st := a.VerifySession(v, t0); st != SessionInvalid {
		t.Errorf("a session of an instance with other salt: state %d, want invalid", st)
	}
	if r := a.Check(Credentials{Cookie: v, HasCookie: true}, t0); r.Verdict != Rejected {
		t.Errorf("Check = %+v, want rejected", r)
	}
}

// Issue 14 item 11: logging out revokes that session (and only it) until
// its expiry, also for a fresh process reading the same state directory.
func TestSessionRevocation(t *testing.T) {
	dir := t.TempDir()
	revs, err := loadRevocations(dir)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(r *Revocations) *Authenticator {
		a, err := New(Params{Username: "vastai", Secrets: []string{testToken}, Salt: testSalt, Revocations: r})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := mk(revs)
	out, kept := a.IssueSession(t0), a.IssueSession(t0)
	if revoked, _, err := a.Revoke(out, t0.Add(time.Minute)); !revoked || err != nil {
		t.Fatalf("Revoke = %v, %v", revoked, err)
	}
	if st := a.VerifySession(out, t0.Add(time.Hour)); st != SessionRevoked {
		t.Errorf("revoked session: state %d", st)
	}
	r := a.Check(Credentials{Cookie: out, HasCookie: true}, t0.Add(time.Hour))
	if r.Verdict != NoCredentials || !r.SessionEnded {
		t.Errorf("Check with a revoked session = %+v, want no credentials (a prompt, not a failure)", r)
	}
	if st := a.VerifySession(kept, t0.Add(time.Hour)); st != SessionValid {
		t.Errorf("another session: state %d, want valid", st)
	}
	// A restart reads the list back.
	again, err := loadRevocations(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := mk(again).VerifySession(out, t0.Add(time.Hour)); st != SessionRevoked {
		t.Errorf("after a restart: state %d, want revoked", st)
	}
	// Garbage and foreign values revoke nothing.
	for _, v := range []string{"", "x", testToken} {
		if revoked, _, _ := a.Revoke(v, t0); revoked {
			t.Errorf("Revoke(%q) revoked something", v)
		}
	}
}

func TestVerifySessionMalformed(t *testing.T) {
	a := newTestAuth(t)
	id := strings.Repeat("B", sessionIDLen)
	for _, v := range []string{"", "v2.", "v2..", "v2.123.", "v2.-5." + id + "." + strings.Repeat("A", 43),
		"v2.+5." + id + "." + strings.Repeat("A", 43),
		"v2.123." + strings.Repeat("A", 43), "v2.123." + id + "." + strings.Repeat("A", 44),
		"v2.123." + id + "x." + strings.Repeat("A", 43),
		"v2." + strings.Repeat("9", 70) + "." + id + "." + strings.Repeat("A", 43),
		// The format of the sessions issued before the salt (v1) is gone.
		"v1.1800000000." + strings.Repeat("A", 43)} {
		if got := a.VerifySession(v, t0); got != SessionInvalid {
			t.Errorf("VerifySession(%q) = %d, want invalid", v, got)
		}
	}
}

func TestExtract(t *testing.T) {
	r := httptest.NewRequest("GET", "http://Example.COM:80/x?a=1&token=tok%2Fen&b=2&portal_handoff=h1.x", nil)
	r.Header.Add("Cookie", "app=1; C.5_auth_token=\"sess\"")
	r.Header.Set("Authorization", "Bearer abc")
	c := Extract(r, "C.5_auth_token")
	want := Credentials{Token: "tok/en", HasToken: true, Handoff: "h1.x", HasHandoff: true, Origin: "http://example.com",
		Cookie: "sess", HasCookie: true, Authorization: "Bearer abc"}
	if c != want {
		t.Errorf("Extract = %+v, want %+v", c, want)
	}
	if c := Extract(httptest.NewRequest("GET", "/", nil), "x"); c != (Credentials{}) {
		t.Errorf("Extract(empty) = %+v", c)
	}
}

// Issue 14 item 13: a public path must be spelled plainly; "..;" (which a
// Java server reads as "..") and double-encoded dots (which an app may
// decode once more) must not pass as public.
func TestIsPublicPath(t *testing.T) {
	for _, tt := range []struct {
		decoded, escaped string
		want             bool
	}{
		{"/manifest.json", "", true},
		{"/manifest.webmanifest", "", true},
		{"/site.webmanifest", "", true},
		{"/.well-known/security.txt", "", true},
		{"/security.txt", "", true},
		{"/.well-known/change-password", "", true},
		{"/portal-resolver", "", true},
		{"/.well-known/acme-challenge/abc123_-XYZ", "", true},
		{"/.well-known/acme-challenge/", "", false},
		{"/.well-known/acme-challenge/../../admin", "", false},
		{"/.well-known/acme-challenge/a/./b", "", false},
		{"/.well-known/acme-challenge//x", "", false},
		{"/.well-known/acme-challenge/..\\x", "", false},
		{"/.well-known/acme-challenge/a/b", "", false},
		{"/.well-known/acme-challenge/..;/..;/admin", "", false},
		{"/.well-known/acme-challenge/x;/admin", "", false},
		{"/.well-known/acme-challenge/%2e%2e/admin", "/.well-known/acme-challenge/%252e%252e/admin", false},
		{"/.well-known/acme-challenge/../admin", "/.well-known/acme-challenge/%2e%2e/admin", false},
		{"/.well-known/acme-challenge/abc", "/.well-known/acme-challenge/%61bc", false},
		{"/manifest.json", "/manifest%2ejson", false},
		{"/manifest.json;x", "", false},
		{"/manifest.json/", "", false},
		{"/manifest.json.bak", "", false},
		{"/portal-resolver/x", "", false},
		{"/", "", false},
		{"/api/x", "", false},
		{LogoutPath, "", false},
		{HandoffPath, "", false},
	} {
		escaped := tt.escaped
		if escaped == "" {
			escaped = tt.decoded
		}
		if got := IsPublicPath(tt.decoded, escaped); got != tt.want {
			t.Errorf("IsPublicPath(%q, %q) = %v, want %v", tt.decoded, escaped, got, tt.want)
		}
	}
	// Through net/url, as the handler sees the request.
	for _, target := range []string{
		"/.well-known/acme-challenge/..;/..;/admin",
		"/.well-known/acme-challenge/%252e%252e/%252e%252e/admin",
		"/.well-known/acme-challenge/%2e%2e/admin",
		"/.well-known/acme-challenge/x%2f..%2f..%2fadmin",
	} {
		r := httptest.NewRequest("GET", target, nil)
		if IsPublicPath(r.URL.Path, r.URL.EscapedPath()) {
			t.Errorf("%s passes as public", target)
		}
	}
}

// TestCheckSignedTakesOnlyUnguessableTokens: over the failure limit, a
// `?token=` is accepted only when it is an unguessable secret (the Open
// button token, the generated token); the user's password there, or as
// Basic or Bearer, is refused unchecked (issue 20, item 6).
func TestCheckSignedTakesOnlyUnguessableTokens(t *testing.T) {
	const open = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	a, err := New(Params{Username: "vastai", Secrets: []string{open, testPassword}, Salt: testSalt, Unguessable: []string{open, "not a secret"}})
	if err != nil {
		t.Fatal(err)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("vastai:"+testPassword))
	for _, c := range []struct {
		name  string
		creds Credentials
		want  Verdict
	}{
		{"open token", Credentials{Token: open, HasToken: true}, Accepted},
		{"password as token", Credentials{Token: testPassword, HasToken: true}, Rejected},
		{"wrong token", Credentials{Token: open[:63] + "0", HasToken: true}, Rejected},
		{"password as Basic", Credentials{Authorization: basic}, NoCredentials},
		{"open token as Bearer", Credentials{Authorization: "Bearer " + open}, NoCredentials},
	} {
		if got := a.CheckSigned(c.creds, time.Unix(1_800_000_000, 0)).Verdict; got != c.want {
			t.Errorf("%s: verdict %v, want %v", c.name, got, c.want)
		}
		if c.want == Accepted || c.name == "password as token" {
			if got := a.Check(c.creds, time.Unix(1_800_000_000, 0)).Verdict; got != Accepted {
				t.Errorf("%s under the limit: verdict %v, want accepted", c.name, got)
			}
		}
	}
	// Without unguessable secrets (only a user's password), a token is not
	// even checked over the limit, as before.
	weak, _ := New(Params{Username: "vastai", Secrets: []string{testPassword}, Salt: testSalt})
	if got := weak.CheckSigned(Credentials{Token: testPassword, HasToken: true}, time.Unix(1_800_000_000, 0)).Verdict; got != NoCredentials {
		t.Errorf("password-only, token over the limit: %v, want not checked", got)
	}
}

func TestResolveSecretsUnguessable(t *testing.T) {
	long := strings.Repeat("k", MinUnguessableLen)
	env := map[string]string{"{env.OPEN_BUTTON_TOKEN}": long, "{env.WEB_PASSWORD}": strings.Repeat("p", 64)}
	r, err := PortalSecretSource(t.TempDir()).ResolveSecrets(func(s string) string { return env[s] })
	if err != nil || len(r.Values) != 2 || len(r.Unguessable) != 1 || r.Unguessable[0] != long {
		t.Fatalf("long Open token and a long password: %+v %v, want only the Open token unguessable", r, err)
	}
	env["{env.OPEN_BUTTON_TOKEN}"] = long[1:]
	if r, _ := PortalSecretSource(t.TempDir()).ResolveSecrets(func(s string) string { return env[s] }); len(r.Unguessable) != 0 {
		t.Errorf("a short Open token is taken as unguessable: %+v", r.Unguessable)
	}
	r, err = PortalSecretSource(t.TempDir()).ResolveSecrets(func(string) string { return "" })
	if err != nil || len(r.Unguessable) != 1 || r.Unguessable[0] != r.Values[0] {
		t.Errorf("generated token: %+v %v, want it unguessable", r, err)
	}
}
