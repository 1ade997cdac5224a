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

func newTestAuth(t testing.TB) *Authenticator {
	t.Helper()
	a, err := New("vastai", []string{testPassword, "", testToken}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestNewNeedsASecret(t *testing.T) {
	for _, secrets := range [][]string{nil, {}, {"", ""}} {
		if _, err := New("vastai", secrets, 0); err != ErrNoSecret {
			t.Errorf("New(%q) error = %v, want ErrNoSecret", secrets, err)
		}
	}
}

func TestCheck(t *testing.T) {
	a := newTestAuth(t)
	session := a.IssueSession(t0)
	expired := a.IssueSession(t0.Add(-a.TTL() - time.Second))
	other, _ := New("vastai", []string{"another secret"}, 0)
	foreign := other.IssueSession(t0)
	tampered := session[:len(session)-1] + map[bool]string{true: "A", false: "B"}[session[len(session)-1] != 'A']

	tests := []struct {
		name          string
		c             Credentials
		verdict       Verdict
		issue, stripA bool
	}{
		{"nothing", Credentials{}, NoCredentials, false, false},
		{"token password", Credentials{Token: testPassword, HasToken: true}, Accepted, true, false},
		{"token open button", Credentials{Token: testToken, HasToken: true}, Accepted, true, false},
		{"token wrong", Credentials{Token: "nope", HasToken: true}, Rejected, false, false},
		{"token empty", Credentials{Token: "", HasToken: true}, Rejected, false, false},
		{"token prefix of secret", Credentials{Token: testToken[:10], HasToken: true}, Rejected, false, false},
		{"session", Credentials{Cookie: session, HasCookie: true}, Accepted, false, false},
		{"session expired", Credentials{Cookie: expired, HasCookie: true}, NoCredentials, false, false},
		{"session tampered", Credentials{Cookie: tampered, HasCookie: true}, Rejected, false, false},
		{"session of other secrets", Credentials{Cookie: foreign, HasCookie: true}, Rejected, false, false},
		{"raw secret cookie", Credentials{Cookie: testToken, HasCookie: true}, Accepted, false, false},
		{"wrong cookie", Credentials{Cookie: "x", HasCookie: true}, Rejected, false, false},
		{"bearer", Credentials{Authorization: "Bearer " + testToken}, Accepted, false, true},
		{"bearer lower case", Credentials{Authorization: "bearer " + testPassword}, Accepted, false, true},
		{"bearer wrong", Credentials{Authorization: "Bearer nope"}, Rejected, false, false},
		{"basic", Credentials{Authorization: basic("vastai", testPassword)}, Accepted, true, true},
		{"basic token", Credentials{Authorization: basic("vastai", testToken)}, Accepted, true, true},
		{"basic wrong user", Credentials{Authorization: basic("root", testPassword)}, Rejected, false, false},
		{"basic wrong password", Credentials{Authorization: basic("vastai", "nope")}, Rejected, false, false},
		{"basic garbage", Credentials{Authorization: "Basic !!!"}, Rejected, false, false},
		{"other scheme is the app's", Credentials{Authorization: "token jupyter123"}, NoCredentials, false, false},
		{"cookie ok, app's own bearer kept", Credentials{Cookie: session, HasCookie: true, Authorization: "Bearer app-key"}, Accepted, false, false},
		{"wrong token but valid cookie", Credentials{Token: "old", HasToken: true, Cookie: session, HasCookie: true}, Accepted, false, false},
		{"expired session and wrong bearer", Credentials{Cookie: expired, HasCookie: true, Authorization: "Bearer x"}, Rejected, false, false},
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
			if r.AuthorizationIsOurs() != tt.stripA {
				t.Errorf("AuthorizationIsOurs = %v, want %v", r.AuthorizationIsOurs(), tt.stripA)
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
	same, _ := New("someone else", []string{testToken, testPassword}, 0)
	if same.VerifySession(v, t0) != SessionValid {
		t.Error("same secrets in another order must accept the session")
	}
	changed, _ := New("vastai", []string{testPassword, testToken + "x"}, 0)
	if changed.VerifySession(v, t0) != SessionInvalid {
		t.Error("changing a secret must revoke the session")
	}
	// A forged expiry with the old MAC is refused.
	_, mac, _ := cutLast(v, '.')
	if a.VerifySession("v1.99999999999."+mac, t0) != SessionInvalid {
		t.Error("a session whose expiry was edited must be invalid")
	}
}

func TestVerifySessionMalformed(t *testing.T) {
	a := newTestAuth(t)
	for _, v := range []string{"", "v1.", "v1..", "v1.123.", "v1.-5." + strings.Repeat("A", 43),
		"v2.123." + strings.Repeat("A", 43), "v1.123." + strings.Repeat("A", 44),
		"v1." + strings.Repeat("9", 70) + "." + strings.Repeat("A", 43), "v1.1.2." + strings.Repeat("A", 43)} {
		if got := a.VerifySession(v, t0); got != SessionInvalid {
			t.Errorf("VerifySession(%q) = %d, want invalid", v, got)
		}
	}
}

func TestExtract(t *testing.T) {
	r := httptest.NewRequest("GET", "/x?a=1&token=tok%2Fen&b=2", nil)
	r.Header.Add("Cookie", "app=1; C.5_auth_token=\"sess\"")
	r.Header.Set("Authorization", "Bearer abc")
	c := Extract(r, "C.5_auth_token")
	want := Credentials{Token: "tok/en", HasToken: true, Cookie: "sess", HasCookie: true, Authorization: "Bearer abc"}
	if c != want {
		t.Errorf("Extract = %+v, want %+v", c, want)
	}
	if c := Extract(httptest.NewRequest("GET", "/", nil), "x"); c != (Credentials{}) {
		t.Errorf("Extract(empty) = %+v", c)
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "…",
		"abc":               "…",
		"abcdefgh":          "ab…",
		testToken:           "0123…",
		"ééééééééééééééééé": "éééé…",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsPublicPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/manifest.json":                          true,
		"/manifest.webmanifest":                   true,
		"/site.webmanifest":                       true,
		"/.well-known/security.txt":               true,
		"/security.txt":                           true,
		"/.well-known/change-password":            true,
		"/portal-resolver":                        true,
		"/.well-known/acme-challenge/abc123":      true,
		"/.well-known/acme-challenge/":            false,
		"/.well-known/acme-challenge/../../admin": false,
		"/.well-known/acme-challenge/a/./b":       false,
		"/.well-known/acme-challenge//x":          false,
		"/.well-known/acme-challenge/..\\x":       false,
		"/manifest.json/":                         false,
		"/manifest.json.bak":                      false,
		"/portal-resolver/x":                      false,
		"/":                                       false,
		"/api/x":                                  false,
		LogoutPath:                                false,
	} {
		if got := IsPublicPath(p); got != want {
			t.Errorf("IsPublicPath(%q) = %v, want %v", p, got, want)
		}
	}
}
