package vastauth

import (
	"net/netip"
	"testing"
	"time"
)

func newTestLimiter(t *testing.T, cfg LimiterConfig) *Limiter {
	t.Helper()
	l, err := NewLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLimiterBlocksAfterLimitAndRecovers(t *testing.T) {
	l := newTestLimiter(t, LimiterConfig{}) // 20 per minute
	ip := netip.MustParseAddr("203.0.113.7")
	now := t0
	for i := range DefaultFailureLimit {
		if ok, _ := l.Fail(ip, now); !ok {
			t.Fatalf("failure %d refused; the first %d must pass", i+1, DefaultFailureLimit)
		}
		now = now.Add(time.Second)
	}
	ok, retry := l.Fail(ip, now)
	if ok {
		t.Fatal("failure over the limit was accepted")
	}
	if retry < time.Second || retry > 2*DefaultFailureWindow {
		t.Fatalf("Retry-After = %v, want between 1s and two windows", retry)
	}
	// Another client is not affected.
	if ok, _ := l.Fail(netip.MustParseAddr("203.0.113.8"), now); !ok {
		t.Fatal("another client was refused")
	}
	// Halfway through the wait it is still refused …
	if ok, _ := l.Fail(ip, now.Add(retry/2)); ok {
		t.Fatalf("accepted at half the Retry-After (%v)", retry/2)
	}
	// … and the wait quoted then (which counts that failure too) is honoured.
	_, retry2 := l.Fail(ip, now.Add(retry/2))
	at := now.Add(retry/2 + retry2)
	if ok, _ := l.Fail(ip, at); !ok {
		t.Fatalf("still refused after waiting the quoted Retry-After %v", retry2)
	}
}

func TestLimiterRetryAfterIsExact(t *testing.T) {
	// With one burst of failures and then silence, the quoted wait is the
	// first moment a failure is accepted again (to the second).
	for _, burst := range []int{5, 6, 9, 30} {
		l := newTestLimiter(t, LimiterConfig{Limit: 5, Window: 10 * time.Second})
		ip := netip.MustParseAddr("198.51.100.1")
		now := t0.Add(3 * time.Second)
		var retry time.Duration
		for range burst + 1 {
			_, retry = l.Fail(ip, now)
		}
		if retry == 0 {
			t.Fatalf("burst %d: not refused", burst+1)
		}
		probe := newTestLimiter(t, l.Config()) // a copy, so the probe does not count
		probe.clients[ClientKey(ip)] = l.clients[ClientKey(ip)]
		if ok, _ := probe.Fail(ip, now.Add(retry-time.Second)); ok {
			t.Errorf("burst %d: accepted a second before Retry-After %v", burst+1, retry)
		}
		if ok, _ := l.Fail(ip, now.Add(retry)); !ok {
			t.Errorf("burst %d: refused at Retry-After %v", burst+1, retry)
		}
	}
}

func TestLimiterWindowSlides(t *testing.T) {
	l := newTestLimiter(t, LimiterConfig{Limit: 3, Window: time.Minute})
	ip := netip.MustParseAddr("192.0.2.1")
	for range 3 {
		l.Fail(ip, t0)
	}
	if ok, _ := l.Fail(ip, t0.Add(30*time.Second)); ok {
		t.Fatal("a 4th failure within the window passed")
	}
	// Two full windows later nothing counts any more.
	for i := range 3 {
		if ok, _ := l.Fail(ip, t0.Add(3*time.Minute)); !ok {
			t.Fatalf("failure %d after the windows expired was refused", i+1)
		}
	}
}

func TestLimiterIPv6PrefixAndMappedV4(t *testing.T) {
	l := newTestLimiter(t, LimiterConfig{Limit: 2, Window: time.Minute})
	l.Fail(netip.MustParseAddr("2001:db8:1:2::1"), t0)
	l.Fail(netip.MustParseAddr("2001:db8:1:2:ffff::9"), t0)
	if ok, _ := l.Fail(netip.MustParseAddr("2001:db8:1:2::abcd"), t0); ok {
		t.Error("addresses of one /64 must share a counter")
	}
	if ok, _ := l.Fail(netip.MustParseAddr("2001:db8:1:3::1"), t0); !ok {
		t.Error("another /64 must have its own counter")
	}
	l.Fail(netip.MustParseAddr("10.0.0.1"), t0)
	l.Fail(netip.MustParseAddr("::ffff:10.0.0.1"), t0)
	if ok, _ := l.Fail(netip.MustParseAddr("10.0.0.1"), t0); ok {
		t.Error("an IPv4-mapped address must count as the IPv4 address")
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	const max = 100
	l := newTestLimiter(t, LimiterConfig{Limit: 3, Window: time.Minute, MaxClients: max})
	attacker := netip.MustParseAddr("192.0.2.200")
	for range 10 {
		l.Fail(attacker, t0)
	}
	// A flood of one-off failures from many addresses.
	base := netip.MustParseAddr("10.0.0.0").As4()
	for i := range 50_000 {
		a := base
		a[1], a[2], a[3] = byte(i>>16), byte(i>>8), byte(i)
		l.Fail(netip.AddrFrom4(a), t0.Add(time.Duration(i)*time.Microsecond))
		if n := l.Len(); n > max {
			t.Fatalf("tracking %d clients, bound is %d", n, max)
		}
	}
	// The hammering client is the least likely to be evicted: it keeps its
	// counter (eviction picks the lowest count of a sample).
	if ok, _ := l.Fail(attacker, t0.Add(time.Second)); ok {
		t.Error("the flood evicted the attacker's counter")
	}
}

func TestLimiterConfigValidation(t *testing.T) {
	for _, cfg := range []LimiterConfig{
		{Limit: -1}, {Window: time.Millisecond}, {MaxClients: -5},
	} {
		if _, err := NewLimiter(cfg); err == nil {
			t.Errorf("NewLimiter(%+v) accepted", cfg)
		}
	}
	l := newTestLimiter(t, LimiterConfig{})
	if c := l.Config(); c.Limit != 20 || c.Window != time.Minute || c.MaxClients != 10000 {
		t.Errorf("defaults = %+v", c)
	}
}
