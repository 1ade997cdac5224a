package tunnels

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBackoffDoublesCapsAndDecays(t *testing.T) {
	b := newBackoff(time.Second, 10*time.Second, time.Minute)
	b.rand = func() float64 { return 0.5 } // no jitter
	t0 := time.Unix(1_700_000_000, 0)
	var got []time.Duration
	for i := 0; i < 6; i++ {
		got = append(got, b.failure(t0))
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("wait %d = %v, want %vs (all %v)", i, got[i], want[i], got)
		}
	}
	// Six failures decay to three after one quiet minute, so the next wait
	// is 2^(4-1) s = 8 s, not the cap.
	if d := b.failure(t0.Add(time.Minute)); d != 8*time.Second {
		t.Fatalf("after decay wait = %v, want 8s", d)
	}
	// A long quiet spell forgets everything.
	if d := b.failure(t0.Add(time.Hour)); d != time.Second {
		t.Fatalf("after an hour wait = %v, want 1s", d)
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	b := newBackoff(time.Second, time.Second, time.Minute)
	now := time.Unix(0, 0)
	for i := 0; i < 200; i++ {
		d := b.failure(now)
		if d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("jittered wait %v outside ±20%%", d)
		}
	}
}

func TestCooldownPersists(t *testing.T) {
	dir := t.TempDir()
	c, err := loadCooldown(dir)
	if err != nil || !c.end().IsZero() {
		t.Fatalf("fresh cooldown = %v, %v", c.end(), err)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := c.extend(until); err != nil {
		t.Fatal(err)
	}
	// An earlier end never shortens it.
	if err := c.extend(until.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	c2, err := loadCooldown(dir)
	if err != nil || !c2.end().Equal(until) {
		t.Fatalf("reloaded cooldown = %v, %v; want %v", c2.end(), err, until)
	}
	if err := os.WriteFile(filepath.Join(dir, cooldownFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c3, err := loadCooldown(dir); err == nil || !c3.end().IsZero() {
		t.Fatalf("corrupt file: %v, %v", c3.end(), err)
	}
}
