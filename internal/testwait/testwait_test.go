package testwait

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestPoll: true as soon as cond is, false once the deadline has passed,
// and cond is tried at the deadline.
func TestPoll(t *testing.T) {
	var n atomic.Int32
	if !Poll(5*time.Second, time.Millisecond, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("Poll gave up on a condition that became true")
	}
	if n.Load() != 3 {
		t.Errorf("cond tried %d times, want 3", n.Load())
	}
	n.Store(0)
	start := time.Now()
	if Poll(30*time.Millisecond, 10*time.Millisecond, func() bool { n.Add(1); return false }) {
		t.Fatal("Poll reported true for a condition that never was")
	}
	if time.Since(start) < 30*time.Millisecond || n.Load() < 2 {
		t.Errorf("gave up after %v and %d tries", time.Since(start), n.Load())
	}
}

// TestFreePort: ports come from below the ephemeral range (an outgoing
// connection can take an ephemeral port between the probe and caddy's
// bind), are never handed out twice, and bind on every address the way
// caddy listens. The old probe of 127.0.0.1:0 returned ephemeral ports.
func TestFreePort(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if p >= low || p < 1024 {
			t.Fatalf("port %d is not below the ephemeral range (%d-)", p, low)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			t.Fatalf("wildcard bind of %d: %v", p, err)
		}
		l.Close()
	}
}
