package caddymodules

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

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
// tunnels_api handler.
//
// The processes live in a tunnels.Manager held in a package-level
// caddy.UsagePool keyed by what the processes depend on (binary, protocol,
// directories). Inside it each tunnel is reference-counted by the configs
// (and the API) that want it. A reload provisions and starts the new config
// before stopping the old one, so a tunnel both configs name keeps its
// process and URL; tunnels created through the API survive reloads too.
// The pooled manager runs its workers on its own context, not the config's.
type TunnelsApp struct {
	// Cloudflared is the cloudflared executable, a path or a name on PATH.
	// Placeholders such as {env.CLOUDFLARED_BIN} are resolved.
	// Default: cloudflared
	Cloudflared string `json:"cloudflared,omitempty"`
	// Protocol is cloudflared's transport to the edge: auto, http2 or quic.
	// Default: http2
	Protocol string `json:"protocol,omitempty"`
	// LogDir receives tunnels.log with every cloudflared's output.
	// Default: none (output is discarded)
	LogDir string `json:"log_dir,omitempty"`
	// StateDir keeps the quick-tunnel rate-limit cooldown across restarts.
	// Default: none (kept in memory)
	StateDir string `json:"state_dir,omitempty"`

	// Quick lists the quick tunnels this config starts, by local target
	// (http(s)://localhost:<port>, 127.0.0.1 or [::1]).
	Quick []QuickTunnelConfig `json:"quick,omitempty"`
	// Named runs the account's tunnel. Its token must be a placeholder
	// such as {env.CF_TUNNEL_TOKEN}: the admin API serves this JSON to any
	// local process, so a literal token is refused.
	Named *NamedTunnelConfig `json:"named,omitempty"`

	// ReadyTimeout bounds a start without a ready URL. Default: 45s
	ReadyTimeout caddy.Duration `json:"ready_timeout,omitempty"`
	// UnreadyRestart restarts a live process that reports no edge
	// connection for this long. Default: 1m
	UnreadyRestart caddy.Duration `json:"unready_restart,omitempty"`
	// KillGrace is the wait between SIGTERM and SIGKILL. Default: 5s
	KillGrace caddy.Duration `json:"kill_grace,omitempty"`
	// PollInterval is how often cloudflared's /ready is asked. Default: 500ms
	PollInterval caddy.Duration `json:"poll_interval,omitempty"`
	// BackoffBase is the first restart wait, doubled per failure up to
	// BackoffMax. Defaults: 2s, 5m
	BackoffBase caddy.Duration `json:"backoff_base,omitempty"`
	BackoffMax  caddy.Duration `json:"backoff_max,omitempty"`
	// FailureDecay halves the failure count per quiet period. Default: 5m
	FailureDecay caddy.Duration `json:"failure_decay,omitempty"`
	// RateLimitCooldown is the wait after Cloudflare refused a quick
	// tunnel (429). Default: 10m
	RateLimitCooldown caddy.Duration `json:"rate_limit_cooldown,omitempty"`
	// StartSpacing separates quick tunnel starts. Default: 3s
	StartSpacing caddy.Duration `json:"start_spacing,omitempty"`

	opts    tunnels.Options
	token   string
	targets []string
	manager *tunnels.Manager
	poolKey string
	owner   string
	logger  *zap.Logger
}

// QuickTunnelConfig is one quick tunnel of the config.
type QuickTunnelConfig struct {
	// Target is the local URL to publish, e.g. http://localhost:8080.
	Target string `json:"target"`
}

// NamedTunnelConfig is the named tunnel of the config.
type NamedTunnelConfig struct {
	// Token is a placeholder for the tunnel token, resolved at Provision:
	// {env.CF_TUNNEL_TOKEN}. An empty result leaves the named tunnel off.
	Token string `json:"token"`
}

// tunnelManagers holds the running managers across config reloads.
var tunnelManagers = caddy.NewUsagePool()

// pooledManager lets the pool stop a manager's processes when the last
// config using it is gone.
type pooledManager struct{ *tunnels.Manager }

func (p pooledManager) Destruct() error { return p.Close() }

// appOwners numbers app instances; each config owns its tunnels under its
// own name.
var appOwners atomic.Uint64

// CaddyModule returns the Caddy module information.
func (TunnelsApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "tunnels", New: func() caddy.Module { return new(TunnelsApp) }}
}

// Provision resolves placeholders, applies defaults and takes (or creates)
// the shared manager. It starts no process.
func (a *TunnelsApp) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	a.opts = tunnels.Options{
		Binary:            repl.ReplaceAll(a.Cloudflared, ""),
		Protocol:          repl.ReplaceAll(a.Protocol, ""),
		LogDir:            repl.ReplaceAll(a.LogDir, ""),
		StateDir:          repl.ReplaceAll(a.StateDir, ""),
		ReadyTimeout:      time.Duration(a.ReadyTimeout),
		UnreadyRestart:    time.Duration(a.UnreadyRestart),
		KillGrace:         time.Duration(a.KillGrace),
		PollInterval:      time.Duration(a.PollInterval),
		BackoffBase:       time.Duration(a.BackoffBase),
		BackoffMax:        time.Duration(a.BackoffMax),
		FailureDecay:      time.Duration(a.FailureDecay),
		RateLimitCooldown: time.Duration(a.RateLimitCooldown),
		StartSpacing:      time.Duration(a.StartSpacing),
		Logger:            a.logger,
	}
	a.targets = a.targets[:0]
	for i, q := range a.Quick {
		t, err := tunnels.NormalizeTarget(q.Target)
		if err != nil {
			return fmt.Errorf("quick[%d]: %w", i, err)
		}
		a.targets = append(a.targets, t)
	}
	if a.Named != nil {
		if !isPlaceholder(a.Named.Token) {
			// Never echo the value: it may be the token itself.
			return errors.New("named.token must be a placeholder such as {env.CF_TUNNEL_TOKEN}, not a literal token")
		}
		a.token = repl.ReplaceAll(a.Named.Token, "")
		if a.token == "" {
			a.logger.Warn("named tunnel token placeholder is empty; named tunnel off", zap.String("placeholder", a.Named.Token))
		}
	}
	a.poolKey = "tunnels.manager " + a.opts.Identity()
	val, _, err := tunnelManagers.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		return pooledManager{tunnels.NewManager(a.opts)}, nil
	})
	if err != nil {
		a.poolKey = ""
		return err
	}
	a.manager = val.(pooledManager).Manager
	return nil
}

// isPlaceholder reports whether s is exactly one {…} placeholder.
func isPlaceholder(s string) bool {
	return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}'
}

// Validate checks what Provision could not default.
func (a *TunnelsApp) Validate() error {
	if a.opts.Protocol != "" && !tunnels.ValidProtocol(a.opts.Protocol) {
		return fmt.Errorf("protocol %q: want auto, http2 or quic", a.opts.Protocol)
	}
	for name, d := range map[string]caddy.Duration{
		"ready_timeout": a.ReadyTimeout, "unready_restart": a.UnreadyRestart, "kill_grace": a.KillGrace,
		"poll_interval": a.PollInterval, "backoff_base": a.BackoffBase, "backoff_max": a.BackoffMax,
		"failure_decay": a.FailureDecay, "rate_limit_cooldown": a.RateLimitCooldown, "start_spacing": a.StartSpacing,
	} {
		if d < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	return nil
}

// Start takes this config's tunnels from the manager, starting those not
// already running, and returns at once. A missing cloudflared is logged and
// shown as a failed tunnel; it does not stop the server.
func (a *TunnelsApp) Start() error {
	a.owner = "config-" + strconv.FormatUint(appOwners.Add(1), 10)
	a.manager.SetTimings(a.opts)
	acquire := func(spec tunnels.Spec, label string) {
		if _, _, err := a.manager.Acquire(a.owner, spec); err != nil {
			a.logger.Error("tunnel not started", zap.String("tunnel", label), zap.Error(err))
		}
	}
	if a.token != "" {
		acquire(tunnels.NamedSpec(a.token), "named")
	}
	for _, t := range a.targets {
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
	if a.poolKey == "" {
		return nil
	}
	_, err := tunnelManagers.Delete(a.poolKey)
	a.poolKey = ""
	return err
}

// Manager is the running tunnel manager, for the API handler.
func (a *TunnelsApp) Manager() *tunnels.Manager { return a.manager }

// tunnelsAppFor configures the app for the portal_yaml adapter: a quick
// tunnel per served port (when PORTAL_DEFAULT_TUNNELS is on) to that
// external port, in the plan's scheme, so the app's authentication still
// applies through the tunnel and cloudflared speaks what the port serves;
// and the named tunnel when CF_TUNNEL_TOKEN is set, as a placeholder.
func tunnelsAppFor(plan *portalconfig.Plan) TunnelsApp {
	s := plan.Settings
	app := TunnelsApp{Cloudflared: s.CloudflaredBin, Protocol: s.TunnelProtocol, LogDir: s.LogDir, StateDir: s.StateDir}
	if s.DefaultTunnels {
		for _, sp := range plan.Servers {
			app.Quick = append(app.Quick, QuickTunnelConfig{Target: fmt.Sprintf("%s://localhost:%d", plan.Scheme, sp.Port)})
		}
	}
	if s.HasCFTunnelToken {
		app.Named = &NamedTunnelConfig{Token: "{env.CF_TUNNEL_TOKEN}"}
	}
	return app
}

// Interface guards
var (
	_ caddy.App          = (*TunnelsApp)(nil)
	_ caddy.Provisioner  = (*TunnelsApp)(nil)
	_ caddy.Validator    = (*TunnelsApp)(nil)
	_ caddy.CleanerUpper = (*TunnelsApp)(nil)
	_ caddy.Destructor   = pooledManager{}
)
