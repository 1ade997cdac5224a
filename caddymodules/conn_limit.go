package caddymodules

import (
	"encoding/json"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/connlimit"
)

func init() {
	caddy.RegisterModule(ConnLimit{})
}

// sharedConnLimiter counts the connections of every portal_connlimit
// listener in the process. One counter for all of them, kept across
// reloads: the total must bound the process, and connections accepted
// under an old config stay open (and counted) after a reload.
var sharedConnLimiter = connlimit.NewLimiter()

// ConnLimit is the listener wrapper caddy.listeners.portal_connlimit: it
// closes, at once, each connection beyond the per-address or total cap of
// package connlimit, whose Config it embeds. Put it first in
// listener_wrappers, before tls, so that a refused connection costs no
// handshake.
//
// Caddyfile (global options):
//
//	servers {
//		listener_wrappers {
//			portal_connlimit {
//				per_address <n>
//				total       <n>
//				fd_reserve  <n>
//				exempt      <address or prefix...>
//			}
//			tls
//		}
//	}
type ConnLimit struct {
	connlimit.Config

	limits connlimit.Limits
	logger *zap.Logger
	// lastLog rate-limits the refusal log (Unix nanoseconds): a flood
	// would otherwise write one line per connection.
	lastLog *atomic.Int64
}

// CaddyModule returns the Caddy module information.
func (ConnLimit) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.listeners.portal_connlimit", New: func() caddy.Module { return new(ConnLimit) }}
}

// Provision resolves the limits against the process's descriptor limit.
func (c *ConnLimit) Provision(ctx caddy.Context) error {
	c.logger = ctx.Logger()
	c.lastLog = new(atomic.Int64)
	nofile := connlimit.DescriptorLimit()
	limits, err := c.Config.Resolve(nofile)
	if err != nil {
		return err
	}
	c.limits = limits
	c.logger.Debug("connection limits", zap.Int("per_address", limits.PerAddress),
		zap.Int("total", limits.Total), zap.Uint64("descriptor_limit", nofile))
	return nil
}

// Validate checks the settings.
func (c *ConnLimit) Validate() error { return c.Config.Check() }

// refusalLogEvery bounds how often a refusal is logged.
const refusalLogEvery = 10 * time.Second

// WrapListener implements caddy.ListenerWrapper.
func (c *ConnLimit) WrapListener(ln net.Listener) net.Listener {
	return connlimit.Wrap(ln, sharedConnLimiter, c.limits, c.refused)
}

func (c *ConnLimit) refused(addr netip.Addr, why connlimit.Refusal) {
	now := time.Now().UnixNano()
	last := c.lastLog.Load()
	if now-last < int64(refusalLogEvery) || !c.lastLog.CompareAndSwap(last, now) {
		return
	}
	total, fromAddr := sharedConnLimiter.Open(addr)
	c.logger.Warn("connection refused: limit reached (logged at most every 10s)",
		zap.String("limit", string(why)), zap.String("remote_ip", addr.String()),
		zap.Int("open_total", total), zap.Int("open_from_address", fromAddr),
		zap.Int("per_address", c.limits.PerAddress), zap.Int("total", c.limits.Total))
}

// connLimitWrapper is the wrapper as the adapter writes it: the package's
// defaults, explicitly, so that the running config shows the limits.
func connLimitWrapper(warns *[]caddyconfig.Warning) json.RawMessage {
	// ConnLimit's JSON is its embedded Config's.
	return caddyconfig.JSONModuleObject(connlimit.Default(), "wrapper", "portal_connlimit", warns)
}

// Interface guards
var (
	_ caddy.Provisioner     = (*ConnLimit)(nil)
	_ caddy.Validator       = (*ConnLimit)(nil)
	_ caddy.ListenerWrapper = (*ConnLimit)(nil)
)
