package tunnels

import (
	"math"
	"math/rand/v2"
	"time"
)

// Clock is the seam for time: tests inject a fake one (suture's getNow /
// getAfterChan).
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// backoff is the restart policy of one tunnel: each failure doubles the
// wait from Base up to Max, and the failure count halves every Decay of
// quiet time, so a tunnel that failed once an hour ago restarts promptly
// while one that crash-loops settles at Max (suture's decaying failures).
type backoff struct {
	base, max, decay time.Duration
	// jitter spreads waits by ±jitter so that tunnels failing together do
	// not retry in lockstep against a rate limit.
	jitter float64
	rand   func() float64 // [0,1)

	failures float64
	last     time.Time
}

func newBackoff(base, max, decay time.Duration) *backoff {
	return &backoff{base: base, max: max, decay: decay, jitter: 0.2, rand: rand.Float64}
}

// failure records a failure at now and returns how long to wait before the
// next attempt.
func (b *backoff) failure(now time.Time) time.Duration {
	b.decayTo(now)
	b.failures++
	b.last = now
	// 2^(failures-1), computed in float and capped before converting so that
	// a long crash loop cannot overflow.
	d := float64(b.base) * math.Pow(2, math.Max(0, math.Ceil(b.failures)-1))
	if d > float64(b.max) {
		d = float64(b.max)
	}
	d *= 1 + b.jitter*(2*b.rand()-1)
	if d < 0 {
		d = 0
	}
	return time.Duration(d)
}

// decayTo halves the failure count for every decay period since the last
// failure.
func (b *backoff) decayTo(now time.Time) {
	if b.last.IsZero() || b.decay <= 0 || b.failures == 0 {
		return
	}
	elapsed := now.Sub(b.last)
	if elapsed <= 0 {
		return
	}
	b.failures *= math.Pow(0.5, float64(elapsed)/float64(b.decay))
	if b.failures < 0.01 {
		b.failures = 0
	}
}
