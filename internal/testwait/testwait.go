// Package testwait holds the two helpers tests use to wait for events
// instead of sleeping: Eventually (bounded polling of a condition) and
// FreePort (a TCP port a process can bind a moment later).
package testwait

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// Interval is the poll interval of Eventually when the caller passes 0.
const Interval = 20 * time.Millisecond

// Eventually polls cond every interval (Interval when 0) until it is true,
// or fails the test once timeout has passed, naming what it waited for.
// cond is always tried at least once, and once more at the deadline.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, interval, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Poll is Eventually without the test: it reports whether cond became true
// before timeout passed (for callers that fail with their own message, or
// that wait in a goroutine where t.Fatal may not be called).
func Poll(timeout, interval time.Duration, cond func() bool) bool {
	if interval <= 0 {
		interval = Interval
	}
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(interval, time.Until(deadline)+time.Millisecond))
	}
}

// FreePort returns a TCP port that a process can bind a moment later, as
// caddy binds: on every address (":port"). Probing 127.0.0.1 alone missed a
// port held on another address, and a port from the kernel's ephemeral range
// can be taken in between by any process's outgoing connection (both made
// the boot test fail with "address already in use" under load). So the port
// is drawn below the ephemeral range, where outgoing connections never land,
// checked with a wildcard bind on TCP (IPv4 and IPv6), and never handed out
// twice in one test binary.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := 20000, ephemeralLow()
	portMu.Lock()
	defer portMu.Unlock()
	for try := 0; try < 200; try++ {
		p := lo + portRand.Intn(hi-lo)
		if handedOut[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			continue
		}
		l.Close()
		handedOut[p] = true
		return p
	}
	t.Fatalf("no free port in %d-%d after 200 tries", lo, hi)
	return 0
}

var (
	portMu    sync.Mutex
	portRand  = rand.New(rand.NewSource(time.Now().UnixNano() ^ int64(os.Getpid())))
	handedOut = map[int]bool{}
)

// ephemeralLow is the bottom of the kernel's ephemeral port range (32768
// when it cannot be read or leaves too little room below it).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > 20000+1000 {
			return lo
		}
	}
	return 32768
}
