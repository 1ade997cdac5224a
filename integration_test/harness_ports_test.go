package integration_test

import (
	"fmt"
	"net"
	"testing"
)

// TestFreePort: ports come from below the ephemeral range (an outgoing
// connection can take an ephemeral port between the probe and caddy's
// bind), are never handed out twice, and bind on every address the way
// caddy listens. The old probe of 127.0.0.1:0 returned ephemeral ports.
func TestFreePort(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for i := 0; i < 50; i++ {
		p := freePort(t)
		if p >= low || p < 1024 {
			t.Fatalf("port %d is not below the ephemeral range (%d-)", p, low)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	for p := range seen {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			t.Fatalf("wildcard bind of %d: %v", p, err)
		}
		l.Close()
		break
	}
}
