package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// Limiter counts the open connections of every listener that shares it.
// The zero value is not usable; call NewLimiter.
type Limiter struct {
	mu     sync.Mutex
	total  int
	byAddr map[netip.Prefix]int
}

// NewLimiter returns an empty Limiter.
func NewLimiter() *Limiter {
	return &Limiter{byAddr: map[netip.Prefix]int{}}
}

// Refusal says which limit a connection hit.
type Refusal string

const (
	// Admitted: no limit was hit.
	Admitted Refusal = ""
	// OverPerAddress: the client already holds PerAddress connections.
	OverPerAddress Refusal = "per_address"
	// OverTotal: the listeners already hold Total connections.
	OverTotal Refusal = "total"
)

// Ticket is one admitted connection; Release gives its place back.
type Ticket struct {
	key     netip.Prefix
	counted bool // counted under key (not exempt)
}

// Acquire admits a connection from addr under lim, or says which limit it
// hit. An admitted connection must be released exactly once.
func (l *Limiter) Acquire(addr netip.Addr, lim *Limits) (Ticket, Refusal) {
	t := Ticket{key: Key(addr), counted: !lim.exempt(addr)}
	total := lim.Total
	if total <= 0 {
		total = unlimited
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= total {
		return Ticket{}, OverTotal
	}
	if t.counted {
		if l.byAddr[t.key] >= lim.PerAddress {
			return Ticket{}, OverPerAddress
		}
		l.byAddr[t.key]++
	}
	l.total++
	return t, Admitted
}

// Release gives back the place of an admitted connection.
func (l *Limiter) Release(t Ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if t.counted {
		if n := l.byAddr[t.key] - 1; n > 0 {
			l.byAddr[t.key] = n
		} else {
			delete(l.byAddr, t.key)
		}
	}
}

// Open reports the connections held: in total, and from addr's key.
func (l *Limiter) Open(addr netip.Addr) (total, fromAddr int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.byAddr[Key(addr)]
}

// Wrap returns ln with the limits applied: Accept closes each connection
// that would exceed them (calling refused, when not nil, with the client's
// address and the limit hit) and goes on accepting. Addresses that are not
// IP (a unix socket) are not limited.
func Wrap(ln net.Listener, l *Limiter, lim Limits, refused func(addr netip.Addr, why Refusal)) net.Listener {
	return &listener{Listener: ln, limiter: l, limits: lim, refused: refused}
}

type listener struct {
	net.Listener
	limiter *Limiter
	limits  Limits
	refused func(netip.Addr, Refusal)
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, ok := remoteIP(c)
		if !ok {
			return c, nil
		}
		t, why := ln.limiter.Acquire(addr, &ln.limits)
		if why == Admitted {
			return &conn{Conn: c, limiter: ln.limiter, ticket: t}, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			// A reset frees both ends at once: no TIME_WAIT kept here for
			// a client that is flooding us.
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		if ln.refused != nil {
			ln.refused(addr, why)
		}
	}
}

func remoteIP(c net.Conn) (netip.Addr, bool) {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// conn gives its place back when closed, once, however often Close is
// called (the HTTP server, a hijacking handler and the TLS layer may each
// close it).
type conn struct {
	net.Conn
	limiter  *Limiter
	ticket   Ticket
	released sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.released.Do(func() { c.limiter.Release(c.ticket) })
	return err
}
