package caddymodules

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/tunnels"
)

func init() {
	caddy.RegisterModule(TunnelsApp{})
}

// TunnelsApp is the `tunnels` app: it supervises cloudflared processes,
// Cloudflare quick tunnels (*.trycloudflare.com, one per target) and a
// named tunnel run with the account token, and serves their state to the
// tunnels_api handler. Its JSON is tunnels.Config's (docs/tunnels.md).
//
// The processes live in a tunnels.Manager held in a package-level
// caddy.UsagePool keyed by what the processes depend on (binary, protocol,
// directories). Inside it each tunnel is reference-counted by the configs
// (and the API) that want it. A reload provisions and starts the new config
// before stopping the old one, so a tunnel both configs name keeps its
// process and URL; tunnels created through the API survive reloads too.
// The pooled manager runs its workers on its own context, not the config's,
// and logs through the newest config's logger.
type TunnelsApp struct {
	tunnels.Config

	resolved tunnels.Config // placeholders resolved, defaults filled
	token    string
	manager  *tunnels.Manager
	pooled   *shared[*tunnels.Manager]
	owner    string
	logger   *zap.Logger
}

// tunnelManagers holds the running managers across config reloads.
// The last config using a manager gone, its Close stops the processes.
var tunnelManagers = newSharedPool[*tunnels.Manager]("tunnels")

// appOwners numbers app instances; each config owns its tunnels under its
// own name.
var appOwners atomic.Uint64

// CaddyModule returns the Caddy module information.
func (TunnelsApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "tunnels", New: func() caddy.Module { return new(TunnelsApp) }}
}

// Provision resolves placeholders, applies the defaults, checks the result
// and takes (or creates) the shared manager. It starts no process.
func (a *TunnelsApp) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	c := a.Config
	expandPlaceholders(&c.Cloudflared, &c.LogDir, &c.StateDir)
	c = c.WithDefaults()
	if err := c.Check(); err != nil {
		return err
	}
	targets := make([]string, 0, len(c.Quick))
	for _, q := range c.Quick {
		t, _ := tunnels.NormalizeTarget(q) // valid, as checked
		targets = append(targets, t)
	}
	c.Quick = targets
	a.resolved = c
	a.token = ""
	if c.NamedToken != "" {
		a.token = c.NamedToken
		expandPlaceholders(&a.token)
		if a.token == "" {
			a.logger.Warn("named tunnel token placeholder is empty; named tunnel off", zap.String("placeholder", c.NamedToken))
		}
	}
	pooled, err := tunnelManagers.hold("tunnels.manager "+c.Identity(), a, a.logger, func(log *zap.Logger) (*tunnels.Manager, error) {
		return tunnels.NewManager(c, log), nil
	})
	if err != nil {
		return err
	}
	a.pooled, a.manager = pooled, pooled.Value
	return nil
}

// Validate checks the settings as Provision resolved them (Provision has
// refused bad ones before taking the pooled manager).
func (a *TunnelsApp) Validate() error { return a.resolved.Check() }

// Start takes this config's tunnels from the manager, starting those not
// already running, and returns at once. A missing cloudflared is logged and
// shown as a failed tunnel; it does not stop the server.
func (a *TunnelsApp) Start() error {
	a.owner = "config-" + strconv.FormatUint(appOwners.Add(1), 10)
	a.manager.Reconfigure(a.resolved)
	acquire := func(spec tunnels.Spec, label string) {
		if _, _, err := a.manager.Acquire(a.owner, spec); err != nil {
			a.logger.Error("tunnel not started", zap.String("tunnel", label), zap.Error(err))
		}
	}
	if a.token != "" {
		acquire(tunnels.NamedSpec(a.token), "named")
	}
	for _, t := range a.resolved.Quick {
		acquire(tunnels.QuickSpec(t), t)
	}
	return nil
}

// Stop releases this config's tunnels; those no newer config (or the API)
// holds are stopped, their processes gone when Stop returns.
func (a *TunnelsApp) Stop() error {
	if a.manager != nil && a.owner != "" {
		a.manager.Release(a.owner)
	}
	return nil
}

// Cleanup drops this config's reference to the manager; the last one
// stops every remaining tunnel. It tolerates a failed Provision.
func (a *TunnelsApp) Cleanup() error {
	err := a.pooled.release()
	a.pooled = nil
	return err
}

// Manager is the running tunnel manager, for the API handler.
func (a *TunnelsApp) Manager() *tunnels.Manager { return a.manager }

// AppPorts are the portal's apps as this config lists them, for the API's
// advice on targets.
func (a *TunnelsApp) AppPorts() []tunnels.App { return a.resolved.Apps }

// tunnelsAppFor configures the app for the portal_yaml adapter: a quick
// tunnel per served port (when PORTAL_DEFAULT_TUNNELS is on) to that
// external port, in the plan's scheme, so the app's authentication still
// applies through the tunnel and cloudflared speaks what the port serves;
// the named tunnel when CF_TUNNEL_TOKEN is set, as a placeholder; and
// every app's ports, so that the API can warn about a tunnel to an
// internal port.
func tunnelsAppFor(plan *portalconfig.Plan) TunnelsApp {
	s := plan.Settings
	c := tunnels.Config{Cloudflared: s.CloudflaredBin, Protocol: s.TunnelProtocol, LogDir: s.LogDir, StateDir: s.StateDir}
	if _, port, err := net.SplitHostPort(s.AdminListen); err == nil {
		c.AdminPort, _ = strconv.Atoi(port)
	}
	if s.DefaultTunnels {
		for _, sp := range plan.Servers {
			c.Quick = append(c.Quick, fmt.Sprintf("%s://localhost:%d", plan.Scheme, sp.Port))
		}
	}
	if s.HasCFTunnelToken {
		c.NamedToken = "{env.CF_TUNNEL_TOKEN}"
	}
	for _, info := range plan.Apps {
		c.Apps = append(c.Apps, tunnels.App{
			Name: info.Name, InternalPort: info.InternalPort, ExternalPort: info.ExternalPort,
			Served: info.Served, TunnelPort: info.TunnelPort, Scheme: info.Scheme,
		})
	}
	return TunnelsApp{Config: c}
}

// Interface guards
var (
	_ caddy.App          = (*TunnelsApp)(nil)
	_ caddy.Provisioner  = (*TunnelsApp)(nil)
	_ caddy.Validator    = (*TunnelsApp)(nil)
	_ caddy.CleanerUpper = (*TunnelsApp)(nil)
)

// loadTunnelsApp is the config's tunnels app, for the modules that act on
// its tunnels.
func loadTunnelsApp(ctx caddy.Context) (*TunnelsApp, error) {
	appIface, err := ctx.App("tunnels")
	if err != nil {
		return nil, fmt.Errorf("loading the tunnels app: %w", err)
	}
	app, ok := appIface.(*TunnelsApp)
	if !ok {
		return nil, fmt.Errorf("tunnels app has unexpected type %T", appIface)
	}
	return app, nil
}
