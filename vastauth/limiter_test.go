package vastauth

import (
	"net/netip"
	"testing"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

func newTestLimiter(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := NewLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLimiterBlocksAfterLimitAndRecovers(t *testing.T) {
	l := newTestLimiter(t, Config{}) // 20 per minute
	ip := netip.MustParseAddr("203.0.113.7")
	now := t0
	for i := range Default().FailureLimit {
		if ok, _, _ := l.Fail(ip, now); !ok {
			t.Fatalf("failure %d refused; the first %d must pass", i+1, Default().FailureLimit)
		}
		now = now.Add(time.Second)
	}
	ok, retry, _ := l.Fail(ip, now)
	if ok {
		t.Fatal("failure over the limit was accepted")
	}
	if retry < time.Second || retry > 2*Default().FailureWindow.Std() {
		t.Fatalf("Retry-After = %v, want between 1s and two windows", retry)
	}
	// Another client is not affected.
	if ok, _, _ := l.Fail(netip.MustParseAddr("203.0.113.8"), now); !ok {
		t.Fatal("another client was refused")
	}
	// Halfway through the wait it is still refused …
	if ok, _, _ := l.Fail(ip, now.Add(retry/2)); ok {
		t.Fatalf("accepted at half the Retry-After (%v)", retry/2)
	}
	// … and the wait quoted then (which counts that failure too) is honoured.
	_, retry2, _ := l.Fail(ip, now.Add(retry/2))
	at := now.Add(retry/2 + retry2)
	if ok, _, _ := l.Fail(ip, at); !ok {
		t.Fatalf("still refused after waiting the quoted Retry-After %v", retry2)
	}
}

func TestLimiterRetryAfterIsExact(t *testing.T) {
	// With one burst of failures and then silence, the quoted wait is the
	// first moment a failure is accepted again (to the second).
	for _, burst := range []int{5, 6, 9, 30} {
		l := newTestLimiter(t, Config{FailureLimit: 5, FailureWindow: confdecl.Duration(10 * time.Second)})
		ip := netip.MustParseAddr("198.51.100.1")
		now := t0.Add(3 * time.Second)
		var retry time.Duration
		for range burst + 1 {
			_, retry, _ = l.Fail(ip, now)
		}
		if retry == 0 {
			t.Fatalf("burst %d: not refused", burst+1)
		}
		probe := &Limiter{cfg: l.cfg, clients: map[netip.Addr]failures{}} // a copy, so the probe does not count
		probe.clients[ClientKey(ip)] = l.clients[ClientKey(ip)]
		if ok, _, _ := probe.Fail(ip, now.Add(retry-time.Second)); ok {
			t.Errorf("burst %d: accepted a second before Retry-After %v", burst+1, retry)
		}
		if ok, _, _ := l.Fail(ip, now.Add(retry)); !ok {
			t.Errorf("burst %d: refused at Retry-After %v", burst+1, retry)
		}
	}
}

func TestLimiterWindowSlides(t *testing.T) {
	l := newTestLimiter(t, Config{FailureLimit: 3, FailureWindow: confdecl.Duration(time.Minute)})
	ip := netip.MustParseAddr("192.0.2.1")
	for range 3 {
		l.Fail(ip, t0)
	}
	if ok, _, _ := l.Fail(ip, t0.Add(30*time.Second)); ok {
		t.Fatal("a 4th failure within the window passed")
	}
	// Two full windows later nothing counts any more.
	for i := range 3 {
		if ok, _, _ := l.Fail(ip, t0.Add(3*time.Minute)); !ok {
			t.Fatalf("failure %d after the windows expired was refused", i+1)
		}
	}
}

func TestLimiterIPv6PrefixAndMappedV4(t *testing.T) {
	l := newTestLimiter(t, Config{FailureLimit: 2, FailureWindow: confdecl.Duration(time.Minute)})
	l.Fail(netip.MustParseAddr("2001:db8:1:2::1"), t0)
	l.Fail(netip.MustParseAddr("2001:db8:1:2:ffff::9"), t0)
	if ok, _, _ := l.Fail(netip.MustParseAddr("2001:db8:1:2::abcd"), t0); ok {
		t.Error("addresses of one /64 must share a counter")
	}
	if ok, _, _ := l.Fail(netip.MustParseAddr("2001:db8:1:3::1"), t0); !ok {
		t.Error("another /64 must have its own counter")
	}
	l.Fail(netip.MustParseAddr("10.0.0.1"), t0)
	l.Fail(netip.MustParseAddr("::ffff:10.0.0.1"), t0)
	if ok, _, _ := l.Fail(netip.MustParseAddr("10.0.0.1"), t0); ok {
		t.Error("an IPv4-mapped address must count as the IPv4 address")
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	const max = 100
	l := newTestLimiter(t, Config{FailureLimit: 3, FailureWindow: confdecl.Duration(time.Minute), MaxTrackedClients: max})
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
	if ok, _, _ := l.Fail(attacker, t0.Add(time.Second)); ok {
		t.Error("the flood evicted the attacker's counter")
	}
}

func TestLimiterConfigValidation(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{FailureLimit: -1}, "failure_limit: must be at least 1, got -1"},
		{Config{FailureWindow: confdecl.Duration(time.Millisecond)}, "failure_window: must be at least 1s, got 1ms"},
		{Config{MaxTrackedClients: -5}, "max_tracked_clients: must be at least 1, got -5"},
	} {
		if _, err := NewLimiter(tt.cfg); err == nil || err.Error() != tt.want {
			t.Errorf("NewLimiter(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	l := newTestLimiter(t, Config{})
	if limit, window, maxClients := l.Settings(); limit != 20 || window != time.Minute || maxClients != 10000 {
		t.Errorf("defaults = %d, %v, %d", limit, window, maxClients)
	}
}

// Blocked says whether a client is over the limit without counting, and
// Fail reports the failure that reaches the limit once.
func TestLimiterBlockedAndReached(t *testing.T) {
	l := newTestLimiter(t, Config{FailureLimit: 3, FailureWindow: confdecl.Duration(time.Minute)})
	ip := netip.MustParseAddr("192.0.2.9")
	for i := range 3 {
		if blocked, _ := l.Blocked(ip, t0); blocked {
			t.Fatalf("blocked before failure %d", i+1)
		}
		ok, _, reached := l.Fail(ip, t0)
		if !ok || reached != (i == 2) {
			t.Fatalf("failure %d: ok %v, reached %v", i+1, ok, reached)
		}
	}
	for range 100 { // looking does not count: the wait stays the same
		if blocked, wait := l.Blocked(ip, t0); !blocked || wait != 61*time.Second {
			t.Fatalf("Blocked = %v, %v; want true, 61s", blocked, wait)
		}
	}
	if _, _, reached := l.Fail(ip, t0); reached {
		t.Error("reached reported again for a client already over the limit")
	}
	if blocked, _ := l.Blocked(netip.MustParseAddr("192.0.2.10"), t0); blocked {
		t.Error("an unknown client is blocked")
	}
	if blocked, _ := l.Blocked(ip, t0.Add(3*time.Minute)); blocked {
		t.Error("still blocked after two windows")
	}
}
