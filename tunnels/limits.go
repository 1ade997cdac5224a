package tunnels

import (
	"fmt"
	"time"
)

// tokenBucket paces creations: it holds up to burst tokens, one comes back
// every interval, and each creation spends one. It starts full.
type tokenBucket struct {
	spent float64 // tokens missing from a full bucket at last
	last  time.Time
}

// take spends a token at now, or reports how long until one is back.
func (b *tokenBucket) take(now time.Time, burst int, interval time.Duration) (time.Duration, bool) {
	if interval <= 0 || burst <= 0 {
		return 0, true
	}
	if !b.last.IsZero() && now.After(b.last) {
		b.spent -= float64(now.Sub(b.last)) / float64(interval)
		if b.spent < 0 {
			b.spent = 0
		}
	}
	b.last = now
	if b.spent+1 > float64(burst) {
		missing := b.spent + 1 - float64(burst)
		return time.Duration(missing * float64(interval)).Round(time.Millisecond), false
	}
	b.spent++
	return 0, true
}

// SlowDownError refuses a creation or refresh that comes too soon after
// CreateBurst others; Wait is how long until one is allowed again.
type SlowDownError struct {
	Wait     time.Duration
	Burst    int
	Interval time.Duration
}

func (e *SlowDownError) Error() string {
	return fmt.Sprintf("%v: retry in %v (create_burst %d, then one per create_interval %v)",
		ErrSlowDown, (e.Wait + 99*time.Millisecond).Truncate(100*time.Millisecond), e.Burst, e.Interval)
}

// Is makes errors.Is(err, ErrSlowDown) true.
func (e *SlowDownError) Is(target error) bool { return target == ErrSlowDown }
