package vastauth

import (
	"net/netip"
	"testing"
	"time"
)

// The decision for each way of presenting a credential, as the handler runs
// it on every request (ns/op, allocs/op with -benchmem).
func benchCheck(b *testing.B, c Credentials, want Verdict) {
	a := newTestAuth(b)
	b.ReportAllocs()
	for b.Loop() {
		if r := a.Check(c, t0); r.Verdict != want {
			b.Fatalf("verdict %d, want %d", r.Verdict, want)
		}
	}
}

func BenchmarkCheckBearer(b *testing.B) {
	benchCheck(b, Credentials{Authorization: "Bearer " + testToken}, Accepted)
}

func BenchmarkCheckSessionCookie(b *testing.B) {
	a := newTestAuth(b)
	benchCheck(b, Credentials{Cookie: a.IssueSession(t0), HasCookie: true}, Accepted)
}

func BenchmarkCheckSecretCookie(b *testing.B) {
	benchCheck(b, Credentials{Cookie: testToken, HasCookie: true}, Accepted)
}

func BenchmarkCheckBasic(b *testing.B) {
	benchCheck(b, Credentials{Authorization: basic("vastai", testToken)}, Accepted)
}

func BenchmarkCheckToken(b *testing.B) {
	benchCheck(b, Credentials{Token: testToken, HasToken: true}, Accepted)
}

func BenchmarkCheckFailure(b *testing.B) {
	benchCheck(b, Credentials{Authorization: basic("vastai", "wrong password")}, Rejected)
}

// A failure also pays the limiter: a lookup (is the client over the limit?)
// and one map update, each under a mutex.
func BenchmarkCheckFailureWithLimiter(b *testing.B) {
	a := newTestAuth(b)
	l, _ := NewLimiter(Config{FailureLimit: 1 << 30})
	c := Credentials{Authorization: basic("vastai", "wrong password")}
	ip := netip.MustParseAddr("203.0.113.9")
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		if a.Check(c, now).Verdict != Rejected {
			b.Fatal("accepted")
		}
		if blocked, _ := l.Blocked(ip, now); blocked {
			b.Fatal("blocked")
		}
		l.Fail(ip, now)
		now = now.Add(time.Microsecond)
	}
}

func BenchmarkIssueSession(b *testing.B) {
	a := newTestAuth(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = a.IssueSession(t0)
	}
}

// What an authenticated request with an app's own Authorization header pays
// to make sure that header carries no secret of ours.
func BenchmarkCarriesSecretJWT(b *testing.B) {
	a := newTestAuth(b)
	h := "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	b.ReportAllocs()
	for b.Loop() {
		if a.CarriesSecret(h) {
			b.Fatal("a JWT carries our secret")
		}
	}
}
