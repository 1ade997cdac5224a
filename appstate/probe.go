package appstate

import (
	"context"
	"net"
	"sync"
	"time"
)

// prober answers "does anything accept TCP connections on addr?" with a
// plain connect, closed at once. Results are cached for ttl, concurrent
// askers of one address share one connect, and at most cap(sem) connects
// run at once, so a dashboard polling every 2 s, or several of them,
// costs at most one connect per app per ttl.
type prober struct {
	timeout time.Duration
	ttl     time.Duration
	sem     chan struct{}
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	now     func() time.Time

	mu       sync.Mutex
	cache    map[string]probeResult
	inflight map[string]chan struct{}
}

type probeResult struct {
	open bool
	at   time.Time
}

func newProber(timeout, ttl time.Duration, concurrency int) *prober {
	d := &net.Dialer{}
	return &prober{
		timeout:  timeout,
		ttl:      ttl,
		sem:      make(chan struct{}, concurrency),
		dial:     d.DialContext,
		now:      time.Now,
		cache:    map[string]probeResult{},
		inflight: map[string]chan struct{}{},
	}
}

// probe returns, for each address, whether it accepted a connection
// (recently). It returns when every answer is known or ctx ends; an
// address not known by then is reported closed.
func (p *prober) probe(ctx context.Context, addrs []string) map[string]bool {
	out := make(map[string]bool, len(addrs))
	var waits []chan struct{}
	p.mu.Lock()
	for _, addr := range addrs {
		if _, dup := out[addr]; dup {
			continue
		}
		out[addr] = false
		if r, ok := p.cache[addr]; ok && p.fresh(r) {
			out[addr] = r.open
			continue
		}
		done, running := p.inflight[addr]
		if !running {
			done = make(chan struct{})
			p.inflight[addr] = done
			go p.run(addr, done)
		}
		waits = append(waits, done)
	}
	p.mu.Unlock()
	for _, done := range waits {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr := range out {
		if r, ok := p.cache[addr]; ok && p.fresh(r) {
			out[addr] = r.open
		}
	}
	return out
}

func (p *prober) fresh(r probeResult) bool {
	age := p.now().Sub(r.at)
	return age >= 0 && age < p.ttl
}

// run does one connect. It does not depend on the asker's context: an
// asker that goes away (a closed tab) neither cancels the connect, which
// would cache the app as down, nor leaves later askers of the same address
// without an answer. It is bounded all the same: by the slot queue (the
// addresses are the configuration's) and the connect timeout.
func (p *prober) run(addr string, done chan struct{}) {
	defer func() {
		p.mu.Lock()
		delete(p.inflight, addr)
		p.mu.Unlock()
		close(done)
	}()
	p.sem <- struct{}{}
	defer func() { <-p.sem }()
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	conn, err := p.dial(ctx, "tcp", addr)
	if err == nil {
		_ = conn.Close()
	}
	p.mu.Lock()
	p.cache[addr] = probeResult{open: err == nil, at: p.now()}
	p.mu.Unlock()
}
