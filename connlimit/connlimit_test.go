package connlimit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestDerivedTotal(t *testing.T) {
	for _, c := range []struct {
		nofile  uint64
		reserve int
		want    int
	}{
		{0, 1024, 0},                      // unknown limit: no total cap
		{20000, 1024, 9488},               // this machine's limit
		{65536, 1024, 32256},              // supervisord minfds
		{1024, 1024, 256},                 // reserve at most half: 512 kept, half of 512
		{512, 1024, 128},                  //
		{3, 1024, 1},                      // never zero
		{1 << 63, 1024, maxDerived - 512}, // RLIM_INFINITY is bounded
		{20000, 0, 10000},
	} {
		if got := derivedTotal(c.nofile, c.reserve); got != c.want {
			t.Errorf("derivedTotal(%d, %d) = %d, want %d", c.nofile, c.reserve, got, c.want)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{PerAddress: -1}, "per_address: must not be negative, got -1"},
		{Config{Total: -5}, "total: must not be negative, got -5"},
		{Config{FDReserve: -1}, "fd_reserve: must not be negative, got -1"},
		{Config{Exempt: []string{"localhost"}}, `exempt: "localhost": want an IP address or a CIDR prefix`},
		{Config{Exempt: []string{"10.0.0.0/33"}}, `exempt: "10.0.0.0/33"`},
	} {
		err := c.cfg.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
	if err := Default().Check(); err != nil {
		t.Errorf("Default() does not validate: %v", err)
	}
	if err := (Config{}).Check(); err != nil {
		t.Errorf("the empty config (all defaults) does not validate: %v", err)
	}
}

func TestResolveFillsDefaults(t *testing.T) {
	var c Config
	if err := json.Unmarshal([]byte(`{"per_address": 8}`), &c); err != nil {
		t.Fatal(err)
	}
	l, err := c.Resolve(4096)
	if err != nil {
		t.Fatal(err)
	}
	if l.PerAddress != 8 || l.Total != (4096-1024)/2 || len(l.Exempt) != 2 {
		t.Errorf("limits = %+v", l)
	}
	l, _ = Config{Total: 50, Exempt: []string{"192.0.2.9", "2001:db8::/32"}}.Resolve(4096)
	if l.Total != 50 || l.PerAddress != 256 || !l.exempt(netip.MustParseAddr("192.0.2.9")) ||
		!l.exempt(netip.MustParseAddr("2001:db8:1::1")) || l.exempt(netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("limits = %+v", l)
	}
	if _, err := (Config{PerAddress: -1}).Resolve(4096); err == nil {
		t.Error("Resolve accepted an invalid config")
	}
}

func TestKeyGroupsIPv6By64(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"fe80::1%eth0", "fe80::2"},
	} {
		if Key(netip.MustParseAddr(c.a)) != Key(netip.MustParseAddr(c.b)) {
			t.Errorf("%s and %s should share a key", c.a, c.b)
		}
	}
	if Key(netip.MustParseAddr("192.0.2.1")) == Key(netip.MustParseAddr("192.0.2.2")) {
		t.Error("two IPv4 addresses share a key")
	}
	if Key(netip.MustParseAddr("2001:db8:1:2::1")) == Key(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("two /64s share a key")
	}
}

func TestLimiterCounts(t *testing.T) {
	l := NewLimiter()
	lim := Limits{PerAddress: 2, Total: 3, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	a, b, lo := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("127.0.0.1")
	t1, why := l.Acquire(a, &lim)
	_, why2 := l.Acquire(a, &lim)
	if why != Admitted || why2 != Admitted {
		t.Fatal(why, why2)
	}
	if _, why := l.Acquire(a, &lim); why != OverPerAddress {
		t.Errorf("third from one address: %q, want per_address", why)
	}
	if _, why := l.Acquire(b, &lim); why != Admitted {
		t.Errorf("another address: %q", why)
	}
	if _, why := l.Acquire(lo, &lim); why != OverTotal {
		t.Errorf("an exempt address still counts towards the total: %q", why)
	}
	l.Release(t1)
	if _, why := l.Acquire(lo, &lim); why != Admitted {
		t.Errorf("after a release: %q", why)
	}
	if total, fromA := l.Open(a); total != 3 || fromA != 1 {
		t.Errorf("open = %d total, %d from a; want 3, 1", total, fromA)
	}
	// Exempt addresses pass the per-address cap.
	lim = Limits{PerAddress: 1, Exempt: lim.Exempt}
	l = NewLimiter()
	for i := 0; i < 5; i++ {
		if _, why := l.Acquire(lo, &lim); why != Admitted {
			t.Fatalf("exempt connection %d: %q", i, why)
		}
	}
	if len(l.byAddr) != 0 {
		t.Errorf("exempt connections are counted by address: %v", l.byAddr)
	}
}

// dialFrom connects to addr from the loopback address src (Linux routes
// all of 127.0.0.0/8 to lo), so that one test can be several clients.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c: a read gets EOF or
// a reset instead of timing out.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// refusedFrom connects from src and reports whether the server closed the
// connection at once. The reset can even beat the dial's own return.
func refusedFrom(t *testing.T, src, addr string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return true
		}
		t.Fatal(err)
	}
	defer c.Close()
	return closedByServer(c)
}

// wrapLocal listens on 127.0.0.1 behind Wrap with a new Limiter, until the
// test ends.
func wrapLocal(t *testing.T, limits Limits, refused func(netip.Addr, Refusal)) (*Limiter, net.Listener, string) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	limiter := NewLimiter()
	ln := Wrap(raw, limiter, limits, refused)
	t.Cleanup(func() { ln.Close() })
	return limiter, ln, raw.Addr().String()
}

// echoEach accepts on ln until it closes: each connection echoes what it
// reads and stays open, and is handed on the channel.
func echoEach(ln net.Listener) <-chan net.Conn {
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
			go func() { _, _ = io.Copy(c, c) }()
		}
	}()
	return accepted
}

func TestWrapClosesConnectionsOverTheLimit(t *testing.T) {
	var mu sync.Mutex
	var refusals []Refusal
	limiter, ln, addr := wrapLocal(t, Limits{PerAddress: 3, Total: 5}, func(_ netip.Addr, why Refusal) {
		mu.Lock()
		refusals = append(refusals, why)
		mu.Unlock()
	})
	accepted := echoEach(ln)
	// Every connection here has authenticated: none is evicted for room.
	var server []net.Conn
	for i := 0; i < 3; i++ {
		dialFrom(t, "127.0.0.2", addr)
		server = append(server, prove(limiter, <-accepted))
	}
	if !refusedFrom(t, "127.0.0.2", addr) {
		t.Error("the fourth connection from one address was kept open")
	}
	// Another address still gets in, up to the total.
	for i := 0; i < 2; i++ {
		c := dialFrom(t, "127.0.0.3", addr)
		server = append(server, prove(limiter, <-accepted))
		if _, err := c.Write([]byte("x")); err != nil || closedByServer(c) {
			t.Errorf("second client's connection %d was refused", i)
		}
	}
	if !refusedFrom(t, "127.0.0.4", addr) {
		t.Error("a connection over the total was kept open")
	}
	mu.Lock()
	if len(refusals) != 2 || refusals[0] != OverPerAddress || refusals[1] != OverTotal {
		t.Errorf("refusals = %v, want [per_address total]", refusals)
	}
	mu.Unlock()
	// Closing a connection (twice: one place only comes back) lets exactly
	// one more in.
	_ = server[0].Close()
	_ = server[0].Close()
	if total, from := limiter.Open(netip.MustParseAddr("127.0.0.2")); total != 4 || from != 2 {
		t.Fatalf("after one close: open %d, %d from the first client; want 4, 2", total, from)
	}
	c := dialFrom(t, "127.0.0.4", addr)
	server = append(server, prove(limiter, <-accepted))
	if _, err := c.Write([]byte("x")); err != nil || closedByServer(c) {
		t.Error("a connection after a release was refused")
	}
	if !refusedFrom(t, "127.0.0.4", addr) {
		t.Error("the released place was handed out twice")
	}
	for _, c := range server {
		_ = c.Close()
	}
	if total, _ := limiter.Open(netip.Addr{}); total != 0 {
		t.Errorf("all closed, yet %d counted", total)
	}
}

func TestConnCloseReleasesOnce(t *testing.T) {
	limiter, ln, addr := wrapLocal(t, Limits{PerAddress: 1, Total: 10}, nil)
	for round := 0; round < 3; round++ {
		client := dialFrom(t, "127.0.0.5", addr)
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if total, from := limiter.Open(netip.MustParseAddr("127.0.0.5")); total != 1 || from != 1 {
			t.Fatalf("round %d: open %d/%d, want 1/1", round, total, from)
		}
		_ = c.Close()
		_ = c.Close()
		client.Close()
		if total, from := limiter.Open(netip.MustParseAddr("127.0.0.5")); total != 0 || from != 0 {
			t.Fatalf("round %d after close: open %d/%d, want 0/0", round, total, from)
		}
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter()
	lim := Limits{PerAddress: 10, Total: 50}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			a := netip.AddrFrom4([4]byte{192, 0, 2, byte(g)})
			var ts []Ticket
			for i := 0; i < 20; i++ {
				if tk, why := l.Acquire(a, &lim); why == Admitted {
					ts = append(ts, tk)
				}
			}
			mu.Lock()
			admitted += len(ts)
			mu.Unlock()
			for _, tk := range ts {
				l.Release(tk)
			}
		}(g)
	}
	wg.Wait()
	if total, _ := l.Open(netip.Addr{}); total != 0 || len(l.byAddr) != 0 {
		t.Errorf("after every release: total %d, by address %v", total, l.byAddr)
	}
	if admitted < 10 || admitted > 80 {
		t.Errorf("admitted %d", admitted)
	}
}

// FuzzResolve: whatever the settings, a config that validates resolves to
// limits that admit at least one connection per address and, with a known
// descriptor limit, never more connections than descriptors.
func FuzzResolve(f *testing.F) {
	f.Add(0, 0, 0, "", uint64(0))
	f.Add(256, 0, 1024, "127.0.0.1/32", uint64(20000))
	f.Add(1, 5, 0, "::1", uint64(3))
	f.Add(-1, 0, 0, "not an address", uint64(1))
	f.Add(0, 0, 1<<30, "10.0.0.0/8", uint64(1<<63))
	f.Fuzz(func(t *testing.T, per, total, reserve int, exempt string, nofile uint64) {
		c := Config{PerAddress: per, Total: total, FDReserve: reserve}
		if exempt != "" {
			c.Exempt = []string{exempt}
		}
		l, err := c.Resolve(nofile)
		if (err == nil) != (c.Check() == nil) {
			t.Fatalf("Resolve and Validate disagree: %v / %v", err, c.Check())
		}
		if err != nil {
			if !strings.Contains(err.Error(), ":") {
				t.Fatalf("error names no field: %v", err)
			}
			return
		}
		if l.PerAddress < 1 {
			t.Fatalf("per address %d", l.PerAddress)
		}
		if total == 0 && nofile > 0 && (l.Total < 1 || uint64(l.Total) > nofile) {
			t.Fatalf("derived total %d for %d descriptors", l.Total, nofile)
		}
	})
}

// BenchmarkAcquireRelease is the limiter's work per accepted connection.
func BenchmarkAcquireRelease(b *testing.B) {
	l := NewLimiter()
	lim, _ := Default().Resolve(65536)
	a := netip.MustParseAddr("203.0.113.7")
	b.ReportAllocs()
	for b.Loop() {
		t, _ := l.Acquire(a, &lim)
		l.Release(t)
	}
}

// prove marks the connection c (as accepted) authenticated, the way
// vastauth does with the request that carried the credentials.
func prove(l *Limiter, c net.Conn) net.Conn {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = c.RemoteAddr().String()
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, c.LocalAddr()))
	l.Authenticated(r)
	return c
}

// Connections that never authenticated made every cap a lock-out: 256
// idle ones from one address kept a logged-in user behind the same NAT
// out, 9 500 from 40 addresses kept everyone out, loopback included
// (issue 20). A newcomer now takes the place of the oldest unproven
// connection; only authenticated connections hold their place.
func TestUnprovenConnectionsMakeRoom(t *testing.T) {
	limiter, ln, addr := wrapLocal(t, Limits{PerAddress: 3, Total: 5, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}}, nil)
	accepted := echoEach(ln)
	alive := func(c net.Conn) bool {
		if _, err := c.Write([]byte("x")); err != nil {
			return false
		}
		return !closedByServer(c)
	}
	// Three idle connections from one address, the flooder.
	var flood []net.Conn
	for i := 0; i < 3; i++ {
		flood = append(flood, dialFrom(t, "127.0.0.2", addr))
		<-accepted
	}
	// A user behind the same address gets in; the oldest idle one goes.
	user := dialFrom(t, "127.0.0.2", addr)
	prove(limiter, <-accepted)
	if !alive(user) {
		t.Error("a newcomer behind a full address was refused")
	}
	if alive(flood[0]) {
		t.Error("the oldest unproven connection was kept")
	}
	// The user's connection has authenticated: it is never the one evicted.
	for i := 0; i < 6; i++ {
		dialFrom(t, "127.0.0.2", addr)
		<-accepted
	}
	if !alive(user) {
		t.Error("an authenticated connection was evicted")
	}
	// Two authenticated clients elsewhere: the total (5) is reached.
	for i := 0; i < 2; i++ {
		dialFrom(t, "127.0.0.3", addr)
		prove(limiter, <-accepted)
	}
	if total, _ := limiter.Open(netip.Addr{}); total != 5 {
		t.Errorf("open %d, want the total 5", total)
	}
	// Loopback (exempt: cloudflared) gets in at the total, in place of
	// the flooder's two idle connections.
	for i := 0; i < 2; i++ {
		lo := dialFrom(t, "127.0.0.9", addr)
		<-accepted
		if !alive(lo) {
			t.Errorf("loopback connection %d refused at the total", i)
		}
	}
	if total, fromFlood := limiter.Open(netip.MustParseAddr("127.0.0.2")); total != 5 || fromFlood != 1 {
		t.Errorf("open %d, %d from the flooder's address; want 5 and 1 (the user)", total, fromFlood)
	}
	// Every place is now held by a proven or exempt connection: a
	// newcomer is refused.
	if !refusedFrom(t, "127.0.0.4", addr) {
		t.Error("a connection over a total of proven ones was kept")
	}
}
