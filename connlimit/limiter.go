package connlimit

import (
	"container/list"
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// Limiter counts the open connections of every listener that shares it.
// The zero value is not usable; call NewLimiter.
//
// A connection is unproven until a request on it authenticates
// (Authenticated). When a cap is reached, the oldest unproven connection
// (of the same client for PerAddress, of anyone for Total) is closed to
// make room for the newcomer, and only when there is none is the newcomer
// refused. So idle connections that never logged in cannot keep a
// logged-in user, a fresh client or loopback (cloudflared) out (issue 20:
// 9 500 idle connections that each got a 401 locked every public port).
type Limiter struct {
	mu     sync.Mutex
	total  int
	byAddr map[netip.Prefix]int
	// unproven holds the evictable connections not yet authenticated,
	// oldest first, all clients together; unprovenBy the same per key.
	unproven   list.List
	unprovenBy map[netip.Prefix]*list.List
	// byConn finds a connection's entry from a request's addresses.
	byConn map[connID]*entry
}

// connID names one TCP connection to one of our listeners.
type connID struct {
	remote    netip.AddrPort
	localPort uint16
}

// NewLimiter returns an empty Limiter.
func NewLimiter() *Limiter {
	return &Limiter{byAddr: map[netip.Prefix]int{}, unprovenBy: map[netip.Prefix]*list.List{}, byConn: map[connID]*entry{}}
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
type Ticket struct{ e *entry }

type entry struct {
	key      netip.Prefix
	counted  bool // counted under key (not exempt)
	released bool
	id       connID
	// evict closes the connection; nil when it cannot be evicted.
	evict             func()
	inGlobal, inByKey *list.Element // set while unproven and evictable
}

// Acquire admits a connection from addr under lim, or says which limit it
// hit. An admitted connection must be released exactly once. It evicts
// nothing: see acquireConn.
func (l *Limiter) Acquire(addr netip.Addr, lim *Limits) (Ticket, Refusal) {
	t, why, _ := l.acquireConn(addr, lim, connID{}, nil)
	return t, why
}

// acquireConn admits a connection, making room by evicting the oldest
// unproven connections if a cap is reached; it returns their evict
// functions, which the caller runs after (outside the lock). evict, when
// not nil, makes the new connection evictable in turn until it proves
// itself.
func (l *Limiter) acquireConn(addr netip.Addr, lim *Limits, id connID, evict func()) (Ticket, Refusal, []func()) {
	e := &entry{key: Key(addr), counted: !lim.exempt(addr), id: id}
	if e.counted {
		// Exempt clients (loopback: cloudflared carries many visitors)
		// are never evicted.
		e.evict = evict
	}
	total := lim.Total
	if total <= 0 {
		total = unlimited
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var victims []func()
	if e.counted && l.byAddr[e.key] >= lim.PerAddress {
		v := l.oldestUnproven(l.unprovenBy[e.key])
		if v == nil {
			return Ticket{}, OverPerAddress, nil
		}
		victims = append(victims, l.evictLocked(v))
	}
	if l.total >= total {
		v := l.oldestUnproven(&l.unproven)
		if v == nil {
			return Ticket{}, OverTotal, victims
		}
		victims = append(victims, l.evictLocked(v))
	}
	if e.counted {
		l.byAddr[e.key]++
	}
	l.total++
	if e.evict != nil {
		e.inGlobal = l.unproven.PushBack(e)
		byKey := l.unprovenBy[e.key]
		if byKey == nil {
			byKey = list.New()
			l.unprovenBy[e.key] = byKey
		}
		e.inByKey = byKey.PushBack(e)
		l.byConn[id] = e
	}
	return Ticket{e}, Admitted, victims
}

func (l *Limiter) oldestUnproven(ls *list.List) *entry {
	if ls == nil || ls.Len() == 0 {
		return nil
	}
	return ls.Front().Value.(*entry)
}

// evictLocked releases e's place and returns what closes its connection.
func (l *Limiter) evictLocked(e *entry) func() {
	l.releaseLocked(e)
	return e.evict
}

// prove takes e off the unproven lists.
func (l *Limiter) prove(e *entry) {
	if e.inGlobal != nil {
		l.unproven.Remove(e.inGlobal)
		e.inGlobal = nil
	}
	if e.inByKey != nil {
		if byKey := l.unprovenBy[e.key]; byKey != nil {
			byKey.Remove(e.inByKey)
			if byKey.Len() == 0 {
				delete(l.unprovenBy, e.key)
			}
		}
		e.inByKey = nil
	}
}

// Authenticated marks the connection that carried r as proven: a request
// on it passed authentication, so it is never evicted to make room. r's
// RemoteAddr and local address (http.LocalAddrContextKey) name it.
func (l *Limiter) Authenticated(r *http.Request) {
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	ta, ok := local.(*net.TCPAddr)
	if !ok {
		return
	}
	id := connID{remote: netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port()), localPort: uint16(ta.Port)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.byConn[id]; e != nil {
		l.prove(e)
		delete(l.byConn, id)
	}
}

// Release gives back the place of an admitted connection; a second
// release (after an eviction) does nothing.
func (l *Limiter) Release(t Ticket) {
	if t.e == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(t.e)
}

func (l *Limiter) releaseLocked(e *entry) {
	if e.released {
		return
	}
	e.released = true
	l.prove(e)
	if l.byConn[e.id] == e {
		delete(l.byConn, e.id)
	}
	l.total--
	if e.counted {
		if n := l.byAddr[e.key] - 1; n > 0 {
			l.byAddr[e.key] = n
		} else {
			delete(l.byAddr, e.key)
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
		remote, ok := addrPort(c.RemoteAddr())
		if !ok {
			return c, nil
		}
		local, _ := addrPort(c.LocalAddr())
		addr := remote.Addr()
		t, why, victims := ln.limiter.acquireConn(addr, &ln.limits,
			connID{remote: remote, localPort: local.Port()}, func() { reset(c) })
		for _, v := range victims {
			v()
		}
		if why == Admitted {
			return &conn{Conn: c, limiter: ln.limiter, ticket: t}, nil
		}
		if ln.refused != nil {
			ln.refused(addr, why)
		}
		reset(c)
	}
}

// reset closes c with a reset, which frees both ends at once: no
// TIME_WAIT kept here for a client that is flooding us.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(ta.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(ta.Port)), ok
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
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
