package vastauth

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// limiterSettings are the fields of Config the limiter uses.
type limiterSettings struct {
	limit      int
	window     time.Duration
	maxClients int
}

// Limiter counts failed logins per client in a sliding window (the two-
// bucket approximation: the previous window's count, weighted by how much
// of it still overlaps, plus the current one). Only failures touch it, so a
// client with a valid credential is never slowed. Memory is bounded: when
// MaxClients are tracked, expired entries are swept and, if none expired,
// the least active of a few sampled entries is evicted, which keeps the
// counters of clients that are actually hammering.
type Limiter struct {
	cfg limiterSettings

	// mu is read-locked by Blocked, which every guarded request calls,
	// and write-locked only by failures.
	mu        sync.RWMutex
	clients   map[netip.Addr]failures
	lastSweep time.Time
}

// failures is one client's window. Counts saturate instead of wrapping.
type failures struct {
	start     time.Time // start of the current window
	prev, cur uint32
}

// evictionSample is how many entries are looked at to pick one to evict.
const evictionSample = 16

// NewLimiter returns a Limiter for the failure_limit, failure_window and
// max_tracked_clients of c (zero fields take the defaults; they are checked
// by Config.Validate, the one place that knows their bounds).
func NewLimiter(c Config) (*Limiter, error) {
	full := Default()
	full.FailureLimit, full.FailureWindow, full.MaxTrackedClients = c.FailureLimit, c.FailureWindow, c.MaxTrackedClients
	full = full.WithDefaults()
	if err := full.Check(); err != nil {
		return nil, err
	}
	cfg := limiterSettings{limit: full.FailureLimit, window: full.FailureWindow.Std(), maxClients: full.MaxTrackedClients}
	return &Limiter{cfg: cfg, clients: make(map[netip.Addr]failures)}, nil
}

// ClientKey is the identity the limiter counts under: an IPv4 address, or
// the /64 prefix of an IPv6 address, since one host usually holds a whole
// /64 and could otherwise spread its guesses over it.
func ClientKey(addr netip.Addr) netip.Addr {
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

// Fail records one failure by the client at addr at time now. It returns
// ok = true if the failure is within the limit (answer with a login
// prompt), or false with how long the client should wait before it is
// heard again (answer 429 with Retry-After). Refused failures are counted
// too, so a client that keeps guessing stays refused. reached reports that
// this failure brought the client to the limit (its next one is refused),
// once per crossing, for a log line.
func (l *Limiter) Fail(addr netip.Addr, now time.Time) (ok bool, retryAfter time.Duration, reached bool) {
	key := ClientKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()

	f, found := l.clients[key]
	if !found {
		l.makeRoom(now)
		f.start = now
	}
	f.roll(now, l.cfg.window)
	limit := float64(l.cfg.limit)
	blocked := f.estimate(now, l.cfg.window) >= limit
	if f.cur < math.MaxUint32 {
		f.cur++
	}
	l.clients[key] = f
	if !blocked {
		return true, 0, f.estimate(now, l.cfg.window) >= limit
	}
	return false, f.wait(now, l.cfg.window, l.cfg.limit), false
}

// Blocked reports, without counting anything, whether the client at addr
// is over the limit at now, and if so how long until it is heard again.
// A blocked client's guessable credentials must not even be checked: a
// right guess would otherwise still be told apart from a wrong one.
func (l *Limiter) Blocked(addr netip.Addr, now time.Time) (bool, time.Duration) {
	key := ClientKey(addr)
	l.mu.RLock()
	f, found := l.clients[key]
	l.mu.RUnlock()
	if !found {
		return false, 0
	}
	f.roll(now, l.cfg.window)
	if f.estimate(now, l.cfg.window) < float64(l.cfg.limit) {
		return false, 0
	}
	return true, f.wait(now, l.cfg.window, l.cfg.limit)
}

// Len is the number of clients tracked.
func (l *Limiter) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.clients)
}

// Settings are the limit, window and bound in effect (defaults filled in).
func (l *Limiter) Settings() (limit int, window time.Duration, maxClients int) {
	return l.cfg.limit, l.cfg.window, l.cfg.maxClients
}

// roll moves the window forward to contain now.
func (f *failures) roll(now time.Time, w time.Duration) {
	switch el := now.Sub(f.start); {
	case el < w:
	case el < 2*w:
		f.prev, f.cur = f.cur, 0
		f.start = f.start.Add(w)
	default:
		f.prev, f.cur = 0, 0
		f.start = now
	}
}

// estimate is the number of failures in the window ending at now; f must
// have been rolled to now.
func (f failures) estimate(now time.Time, w time.Duration) float64 {
	frac := float64(now.Sub(f.start)) / float64(w)
	return float64(f.prev)*(1-frac) + float64(f.cur)
}

// expired reports whether the entry no longer counts anything at now.
func (f failures) expired(now time.Time, w time.Duration) bool {
	return now.Sub(f.start) >= 2*w
}

// wait is how long from now until, with no further failures, the estimate
// drops below limit again, in whole seconds for Retry-After.
func (f failures) wait(now time.Time, w time.Duration, limit int) time.Duration {
	n := float64(limit)
	var until time.Time
	if float64(f.cur) >= n {
		// The current count alone is over: wait for it to become the previous
		// window and decay until cur*(1-t/w) < n.
		until = f.start.Add(w).Add(time.Duration(float64(w) * (1 - n/float64(f.cur))))
	} else {
		// prev*(1-frac) + cur < n once frac > 1 - (n-cur)/prev.
		until = f.start.Add(time.Duration(float64(w) * (1 - (n-float64(f.cur))/float64(f.prev))))
	}
	// At until the estimate equals limit, still refused: the first whole
	// second strictly after it is when a failure is accepted again.
	return (until.Sub(now)/time.Second + 1) * time.Second
}

// makeRoom ensures one more client fits. It sweeps expired entries at most
// once per window (so a flood costs amortised O(1) per failure) or when the
// table is full, and evicts by sampling if sweeping freed nothing.
func (l *Limiter) makeRoom(now time.Time) {
	full := len(l.clients) >= l.cfg.maxClients
	due := now.Sub(l.lastSweep) >= l.cfg.window
	// When full, sweep again only if the last sweep is over a second old: a
	// sweep that just freed nothing would free nothing again, and scanning
	// the whole table for every new client of a flood is what we avoid.
	if due || (full && now.Sub(l.lastSweep) >= time.Second) {
		l.lastSweep = now
		for k, f := range l.clients {
			if f.expired(now, l.cfg.window) {
				delete(l.clients, k)
			}
		}
	}
	if len(l.clients) < l.cfg.maxClients {
		return
	}
	var victim netip.Addr
	lowest := math.Inf(1)
	i := 0
	for k, f := range l.clients { // map order is randomised: a random sample
		f.roll(now, l.cfg.window)
		if e := f.estimate(now, l.cfg.window); e < lowest {
			victim, lowest = k, e
		}
		if i++; i == evictionSample {
			break
		}
	}
	delete(l.clients, victim)
}
