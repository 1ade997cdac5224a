package tunnels

import (
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

// Config is every setting of the tunnels: the `tunnels` Caddy app embeds it,
// so this is the app's JSON, and the Caddyfile's `tunnels` global option
// fills the same fields by their JSON names. Zero values take Default()'s
// (confdecl.FillDefaults).
//
// Cloudflared, Protocol, LogDir and StateDir are what the processes depend
// on (Identity); a Manager keeps them for its life. The other settings
// apply to a running Manager through Reconfigure, from each tunnel's next
// start, so a reload that changes only them keeps every process and URL.
type Config struct {
	// Cloudflared is the cloudflared executable, a path or a name looked
	// up on PATH. Default: cloudflared
	Cloudflared string `json:"cloudflared,omitempty"`
	// Protocol is cloudflared's transport to Cloudflare's edge (its
	// --protocol): auto, http2 or quic. Default: http2
	Protocol string `json:"protocol,omitempty"`
	// LogDir receives tunnels.log, every cloudflared's output line by line
	// tagged with its tunnel; without it the output is discarded.
	// Default: none
	LogDir string `json:"log_dir,omitempty"`
	// StateDir keeps the quick-tunnel rate-limit cooldown across restarts
	// of the binary; without it the cooldown is kept in memory only.
	// Default: none
	StateDir string `json:"state_dir,omitempty"`

	// Quick lists the quick tunnels the config opens at start, by local
	// target: http(s)://localhost:PORT (or 127.0.0.1, [::1]).
	// Default: none
	Quick []string `json:"quick,omitempty"`
	// NamedToken runs the account's named tunnel with this token. It must
	// be a placeholder such as {env.CF_TUNNEL_TOKEN}, resolved when the
	// config loads: the config is served to every local process by Caddy's
	// admin API, so a literal token is refused. A placeholder that resolves
	// to nothing leaves the named tunnel off. Default: none
	NamedToken string `json:"named_token,omitempty"`

	// ReadyTimeout bounds a start: without a ready URL by then the run
	// fails, with cloudflared's last output lines as the reason.
	// Default: 45s
	ReadyTimeout confdecl.Duration `json:"ready_timeout,omitempty"`
	// UnreadyRestart restarts a running cloudflared whose /ready reports
	// no edge connection for this long. Default: 1m
	UnreadyRestart confdecl.Duration `json:"unready_restart,omitempty"`
	// KillGrace is the wait between SIGTERM and SIGKILL when a tunnel
	// stops. Default: 5s
	KillGrace confdecl.Duration `json:"kill_grace,omitempty"`
	// PollInterval is how often cloudflared's /ready and /quicktunnel are
	// asked. Default: 500ms
	PollInterval confdecl.Duration `json:"poll_interval,omitempty"`
	// BackoffBase is the wait before restarting a tunnel that failed once;
	// it doubles with each further failure up to backoff_max.
	// Default: 2s
	BackoffBase confdecl.Duration `json:"backoff_base,omitempty"`
	// BackoffMax caps the restart wait; at least backoff_base.
	// Default: 5m
	BackoffMax confdecl.Duration `json:"backoff_max,omitempty"`
	// FailureDecay halves a tunnel's failure count per quiet period of
	// this length, so that an old failure no longer lengthens the wait.
	// Default: 5m
	FailureDecay confdecl.Duration `json:"failure_decay,omitempty"`
	// RateLimitCooldown is how long every quick tunnel waits after
	// Cloudflare refused to create one (429 / error 1015); it is kept in
	// state_dir. Default: 10m
	RateLimitCooldown confdecl.Duration `json:"rate_limit_cooldown,omitempty"`
	// StartSpacing separates two quick tunnel starts, so that the tunnels
	// opened at boot do not trip Cloudflare's rate limit together.
	// Default: 3s
	StartSpacing confdecl.Duration `json:"start_spacing,omitempty"`

	// MaxTunnels is the most quick tunnels that may run at once. The API
	// refuses to create more; the config's own tunnels (quick) count but
	// always start. Default: 16
	MaxTunnels int `json:"max_tunnels,omitempty"`
	// CreateBurst is how many tunnels the API may create or refresh in a
	// row before create_interval applies: each asks Cloudflare for a new
	// quick tunnel, and Cloudflare rate-limits those per address.
	// Default: 4
	CreateBurst int `json:"create_burst,omitempty"`
	// CreateInterval is the pace of creations and refreshes through the
	// API once the burst is spent: one per interval. Default: 10s
	CreateInterval confdecl.Duration `json:"create_interval,omitempty"`

	// Apps are the portal's apps and their ports, as the portal_yaml
	// adapter resolved them, so that the API can tell when a tunnel would
	// publish an app's internal port (which bypasses the portal and its
	// authentication) and name the app's external port instead.
	// Default: none
	Apps []App `json:"apps,omitempty"`

	// AdminPort is the local port of Caddy's admin API (the portal_yaml
	// adapter sets PORTAL_ADMIN_LISTEN's port). No tunnel may target it:
	// the admin API rewrites the running config and must never be
	// published. Default: none
	AdminPort int `json:"admin_port,omitempty"`
}

// App is one app of the portal, with the ports the tunnels API compares a
// target with.
type App struct {
	// Name is the app's name in portal.yaml.
	Name string `json:"name"`
	// InternalPort is where the app itself listens, without the portal's
	// authentication.
	InternalPort int `json:"internal_port"`
	// ExternalPort is the port portal.yaml gives the app.
	ExternalPort int `json:"external_port"`
	// Served is true when the portal listens on external_port and proxies
	// the app there, behind its authentication.
	Served bool `json:"served,omitempty"`
	// TunnelPort is the port a tunnel to this app should target (the
	// external port when served, the app's own port for a link-only app);
	// 0 when there is none.
	TunnelPort int `json:"tunnel_port,omitempty"`
	// Scheme is what tunnel_port speaks: http or https.
	Scheme string `json:"scheme,omitempty"`
}

// Default returns the production settings.
func Default() Config {
	return Config{
		Cloudflared:       "cloudflared",
		Protocol:          "http2",
		ReadyTimeout:      confdecl.Duration(45 * time.Second),
		UnreadyRestart:    confdecl.Duration(time.Minute),
		KillGrace:         confdecl.Duration(5 * time.Second),
		PollInterval:      confdecl.Duration(500 * time.Millisecond),
		BackoffBase:       confdecl.Duration(2 * time.Second),
		BackoffMax:        confdecl.Duration(5 * time.Minute),
		FailureDecay:      confdecl.Duration(5 * time.Minute),
		RateLimitCooldown: confdecl.Duration(10 * time.Minute),
		StartSpacing:      confdecl.Duration(3 * time.Second),
		MaxTunnels:        16,
		CreateBurst:       4,
		CreateInterval:    confdecl.Duration(10 * time.Second),
	}
}

// WithDefaults returns c with every zero setting set to Default()'s.
func (c Config) WithDefaults() Config {
	confdecl.FillDefaults(&c, Default())
	return c
}

// Check checks the settings, after WithDefaults; each message names the
// JSON field. It never repeats NamedToken's value, which may be a token.
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var ck confdecl.Check
	// Messages name each setting by its JSON name, found from the field.
	name := func(field any) string { return confdecl.Name(&c, field) }
	ck.OneOf(name(&c.Protocol), c.Protocol, "auto", "http2", "quic")
	// No duration may be negative. They are found by type, so that no list
	// here names them again (and a new one cannot be forgotten).
	v := reflect.ValueOf(c)
	for _, f := range confdecl.Fields(c) {
		if d, ok := v.FieldByIndex(f.Index).Interface().(confdecl.Duration); ok {
			ck.NotNegativeDuration(f.JSON, d)
		}
	}
	if c.BackoffMax < c.BackoffBase {
		ck.Failf(name(&c.BackoffMax), "%v is less than %s %v", c.BackoffMax, name(&c.BackoffBase), c.BackoffBase)
	}
	ck.NotNegative(name(&c.MaxTunnels), int64(c.MaxTunnels))
	ck.NotNegative(name(&c.CreateBurst), int64(c.CreateBurst))
	if c.AdminPort < 0 || c.AdminPort > 65535 {
		ck.Failf(name(&c.AdminPort), "%d is not a port", c.AdminPort)
	}
	for i, q := range c.Quick {
		if _, err := c.CheckTarget(q); err != nil {
			ck.Failf(fmt.Sprintf("quick[%d]", i), "%v", err)
		}
	}
	if c.NamedToken != "" && !isPlaceholder(c.NamedToken) {
		ck.Failf(name(&c.NamedToken), "must be a placeholder such as {env.CF_TUNNEL_TOKEN}, not a literal token")
	}
	for i, a := range c.Apps {
		for _, p := range []struct {
			field string
			v     int
		}{{"internal_port", a.InternalPort}, {"external_port", a.ExternalPort}, {"tunnel_port", a.TunnelPort}} {
			if p.v < 0 || p.v > 65535 {
				ck.Failf(fmt.Sprintf("apps[%d].%s", i, p.field), "%d is not a port", p.v)
			}
		}
		if a.Scheme != "" && a.Scheme != "http" && a.Scheme != "https" {
			ck.Failf(fmt.Sprintf("apps[%d].scheme", i), "%q: want http or https", a.Scheme)
		}
	}
	return ck.Err()
}

// CheckTarget is NormalizeTarget plus this config's refusals: a target on
// AdminPort (whatever its host or scheme) is refused with ErrInvalidTarget.
func (c Config) CheckTarget(raw string) (string, error) {
	norm, err := NormalizeTarget(raw)
	if err != nil || c.AdminPort == 0 {
		return norm, err
	}
	u, err := url.Parse(norm)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrInvalidTarget, clip(raw, 200), err)
	}
	if u.Port() == strconv.Itoa(c.AdminPort) {
		return "", fmt.Errorf("%w %q: port %d is Caddy's admin API, which changes the running config; it is never published",
			ErrInvalidTarget, clip(raw, 200), c.AdminPort)
	}
	return norm, nil
}

// isPlaceholder reports whether s is exactly one {…} placeholder.
func isPlaceholder(s string) bool {
	return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' && !strings.ContainsAny(s[1:len(s)-1], "{}")
}

// Identity is what a Manager's processes depend on: two configs with the
// same Identity can share one Manager.
func (c Config) Identity() string {
	c = c.WithDefaults()
	return fmt.Sprintf("bin=%q protocol=%q log=%q state=%q", c.Cloudflared, c.Protocol, c.LogDir, c.StateDir)
}
