// Package connlimit bounds the connections the portal's public listeners
// hold open: per client address, and in total below the process's
// descriptor limit, so that a flood of idle connections cannot take the
// descriptors the internal server, the followed logs and the upstream
// connections need (issue 14: 21 000 idle connections made /health, the
// dashboard and every app time out).
//
// A connection over a limit is accepted and closed at once (with a reset,
// so it leaves no TIME_WAIT behind); the listener keeps serving everyone
// else. The counts live in a Limiter shared by every listener of the
// process, across config reloads, since connections accepted under the old
// config stay open after the new one starts.
//
// It imports nothing of Caddy: the caddymodules listener wrapper embeds
// Config and hands Wrap its Limiter.
package connlimit

import (
	"math"
	"net/netip"
	"strings"

	"github.com/instanceportal/portal/confdecl"
)

// Config is the listener wrapper's settings (module
// caddy.listeners.portal_connlimit).
type Config struct {
	// PerAddress caps the connections one client holds open at once: one
	// IPv4 address, or one IPv6 /64 (a host usually owns a whole /64, so
	// counting single IPv6 addresses would not bound it). A browser opens
	// six per host and port, so a few people behind one NAT stay well
	// inside it. Default: 256.
	PerAddress int `json:"per_address,omitempty"`
	// Total caps the connections held open on all the listeners that share
	// the limiter (every public port of the portal). When zero it is
	// derived from the process's descriptor limit: half of what FDReserve
	// leaves, since each proxied connection also holds one to its app.
	// Default: none, derived from the descriptor limit.
	Total int `json:"total,omitempty"`
	// FDReserve is how many descriptors the derived total leaves to the
	// rest of the process: the internal server (the dashboard, /health, SSH
	// forwards), followed log files, cloudflared's pipes. At most half the
	// descriptor limit is reserved. Default: 1024.
	FDReserve int `json:"fd_reserve,omitempty"`
	// Exempt lists client addresses or CIDR prefixes that PerAddress does
	// not apply to (they still count towards Total): our own cloudflared
	// and SSH port forwards connect from loopback, each carrying many
	// visitors. Default: ["127.0.0.1/32","::1/128"].
	Exempt []string `json:"exempt,omitempty"`
}

// Default is the configuration the portal runs with.
func Default() Config {
	return Config{
		PerAddress: 256,
		FDReserve:  1024,
		Exempt:     []string{"127.0.0.1/32", "::1/128"},
	}
}

// Check checks the settings as given (before defaults are filled).
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var ck confdecl.Check
	ck.NotNegative("per_address", int64(c.PerAddress))
	ck.NotNegative("total", int64(c.Total))
	ck.NotNegative("fd_reserve", int64(c.FDReserve))
	for _, e := range c.Exempt {
		if _, err := parsePrefix(e); err != nil {
			ck.Failf("exempt", "%q: want an IP address or a CIDR prefix such as 127.0.0.1/32", e)
		}
	}
	return ck.Err()
}

// Limits are a Config resolved against the process: the numbers a listener
// enforces.
type Limits struct {
	PerAddress int
	// Total is 0 when the descriptor limit is unknown: then only
	// PerAddress applies.
	Total  int
	Exempt []netip.Prefix
}

// Resolve fills the defaults and derives the total from nofile, the
// process's descriptor limit (0 when unknown). The config must have passed
// Validate.
func (c Config) Resolve(nofile uint64) (Limits, error) {
	if err := c.Check(); err != nil {
		return Limits{}, err
	}
	confdecl.FillDefaults(&c, Default())
	l := Limits{PerAddress: c.PerAddress, Total: c.Total}
	if l.Total == 0 {
		l.Total = derivedTotal(nofile, c.FDReserve)
	}
	for _, e := range c.Exempt {
		p, _ := parsePrefix(e)
		l.Exempt = append(l.Exempt, p)
	}
	return l, nil
}

// maxDerived bounds the derived total when the descriptor limit is huge
// (RLIM_INFINITY): far beyond what one instance serves, and it keeps the
// arithmetic in int.
const maxDerived = 1 << 22

// derivedTotal is the total cap for a descriptor limit of nofile with
// reserve descriptors kept back (at most half of nofile): half of the rest,
// because every proxied client connection comes with one to its upstream.
// 0 (no total cap) when nofile is unknown.
func derivedTotal(nofile uint64, reserve int) int {
	if nofile == 0 {
		return 0
	}
	if nofile > maxDerived*2 {
		nofile = maxDerived * 2
	}
	n := int(nofile)
	r := min(max(reserve, 0), n/2)
	return max((n-r)/2, 1)
}

// parsePrefix reads "203.0.113.7" or "203.0.113.0/24" (IPv6 alike).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Key is what PerAddress counts by: the IPv4 address, or the IPv6 /64.
func Key(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// exempt reports whether a is in one of the limits' exempt prefixes.
func (l *Limits) exempt(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range l.Exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// unlimited is used where a count has no cap.
const unlimited = math.MaxInt
