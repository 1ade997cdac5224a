// Package appstate tells, for each app of the portal's configuration,
// whether it is running, starting, stopped, failed, not configured or
// external, from supervisord's view of its program and a cheap TCP probe
// of its internal port made by the portal itself. It never imports Caddy.
package appstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/supervisor"
)

// Config is the app list and how to judge its states.
type Config struct {
	// Apps is every app of the configuration, in its order, as /api/apps
	// reports it; the portal_yaml adapter writes it from its plan.
	// Default: none
	Apps []App `json:"apps,omitempty"`
	// Supervisor says how to reach supervisord and where the skip markers
	// are. Default: supervisor.Default()
	Supervisor supervisor.Config `json:"supervisor,omitempty"`
	// ProbeTimeout bounds one TCP connect to an app's internal port.
	// Default: 300ms
	ProbeTimeout time.Duration `json:"probe_timeout,omitempty"`
	// ProbeCache is how long a probe's answer is reused; at most 2s, so a
	// card never lags its app by more. Default: 2s
	ProbeCache time.Duration `json:"probe_cache,omitempty"`
	// ProbeConcurrency bounds the connects in flight at once. Default: 8
	ProbeConcurrency int `json:"probe_concurrency,omitempty"`
}

// App is one app of the configuration: its portal.yaml key (programs are
// matched against it) and what /api/apps has always reported.
type App struct {
	// Key is the app's key in portal.yaml ("entry N" for PORTAL_CONFIG).
	Key string `json:"key"`
	portalconfig.AppInfo
}

// maxProbeCache is the longest a probe may be reused (issue 10).
const maxProbeCache = 2 * time.Second

// Default is the configuration used for every zero field.
func Default() Config {
	return Config{
		Supervisor:       supervisor.Default(),
		ProbeTimeout:     300 * time.Millisecond,
		ProbeCache:       maxProbeCache,
		ProbeConcurrency: 8,
	}
}

func (c Config) withDefaults() Config {
	d := Default()
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = d.ProbeTimeout
	}
	if c.ProbeCache == 0 {
		c.ProbeCache = d.ProbeCache
	}
	if c.ProbeConcurrency == 0 {
		c.ProbeConcurrency = d.ProbeConcurrency
	}
	return c
}

// Validate checks the configuration; each message names the JSON field.
func (c Config) Validate() error {
	var errs []error
	if err := c.Supervisor.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("supervisor: %w", err))
	}
	if c.ProbeTimeout < 0 || c.ProbeTimeout > 0 && c.ProbeTimeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("probe_timeout %v: want at least 1ms", c.ProbeTimeout))
	}
	if c.ProbeCache < 0 || c.ProbeCache > maxProbeCache {
		errs = append(errs, fmt.Errorf("probe_cache %v: want at most %v", c.ProbeCache, maxProbeCache))
	}
	if c.ProbeConcurrency < 0 {
		errs = append(errs, fmt.Errorf("probe_concurrency %d: want at least 1", c.ProbeConcurrency))
	}
	for i, a := range c.Apps {
		if strings.TrimSpace(a.Name) == "" && strings.TrimSpace(a.Key) == "" {
			errs = append(errs, fmt.Errorf("apps[%d]: name: missing", i))
		}
		if a.InternalPort < 0 || a.InternalPort > 65535 {
			errs = append(errs, fmt.Errorf("apps[%d] %q: internal_port %d: want 1-65535", i, a.Name, a.InternalPort))
		}
	}
	return errors.Join(errs...)
}

// The states of an app card (docs/processes.md).
const (
	Running       = "running"
	Starting      = "starting"
	Stopped       = "stopped"
	Failed        = "failed"
	NotConfigured = "not_configured"
	External      = "external"
)

// State is one entry of /api/apps.
type State struct {
	App
	// State is one of the six constants above.
	State string `json:"state"`
	// Program is the supervisord program serving the app (its id).
	Program string `json:"program,omitempty"`
	// ProgramState is that program's supervisord state.
	ProgramState string `json:"program_state,omitempty"`
	// Reachable: the portal's TCP connect to hostname:internal_port
	// succeeded (within the cache time).
	Reachable bool `json:"reachable"`
}

// Tracker computes the states. It is safe for concurrent use.
type Tracker struct {
	cfg    Config
	procs  *supervisor.Service
	prober *prober
}

// New checks cfg and returns a tracker. It connects to nothing yet.
func New(cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	procs, err := supervisor.New(cfg.Supervisor)
	if err != nil {
		return nil, err
	}
	return &Tracker{cfg: cfg, procs: procs, prober: newProber(cfg.ProbeTimeout, cfg.ProbeCache, cfg.ProbeConcurrency)}, nil
}

// States returns every app with its state, then the skipped programs whose
// app is not configured. It always answers: when supervisord cannot be
// asked, the states come from the probes alone, and supervisorErr says why
// (nil when supervisord is simply not running, which is normal off the
// image).
func (t *Tracker) States(ctx context.Context) (states []State, supervisorErr error) {
	procs, err := t.procs.List(ctx)
	haveProcs := err == nil
	if err != nil && !errors.Is(err, supervisor.ErrNotRunning) {
		supervisorErr = err
	}
	var addrs []string
	for _, a := range t.cfg.Apps {
		if addr, ok := probeAddr(a); ok {
			addrs = append(addrs, addr)
		}
	}
	open := t.prober.probe(ctx, addrs)
	return derive(t.cfg.Apps, procs, haveProcs, func(a App) bool {
		addr, ok := probeAddr(a)
		return ok && open[addr]
	}), supervisorErr
}

// probeAddr is where an app listens: hostname:internal_port. The portal
// entry is not probed: this binary serves it, and it is answering.
func probeAddr(a App) (string, bool) {
	if isPortal(a) || a.InternalPort <= 0 || a.InternalPort > 65535 {
		return "", false
	}
	host := strings.Trim(a.Hostname, "[]")
	if host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, strconv.Itoa(a.InternalPort)), true
}

func isPortal(a App) bool {
	return portalconfig.App{Key: a.Key, Name: a.Name}.IsPortal()
}

// derive is the pure decision of docs/processes.md: match programs to apps
// (the rule of `caddy portal check --has`: key or display name, ignoring
// case; a skip marker's app name counts too), then map each program's
// state and the probe to the card's state.
func derive(apps []App, procs []supervisor.Process, haveProcs bool, reachable func(App) bool) []State {
	lookup := &portalconfig.Config{Apps: make([]portalconfig.App, len(apps))}
	for i, a := range apps {
		// The index rides in Line, which Find returns with the app.
		lookup.Apps[i] = portalconfig.App{Key: a.Key, Name: a.Name, Line: i}
	}
	programOf := make([]*supervisor.Process, len(apps))
	var unconfigured []supervisor.Process
	for i := range procs {
		p := &procs[i]
		found, ok := lookup.Find(p.Name)
		if !ok && p.App != "" {
			found, ok = lookup.Find(p.App)
		}
		switch {
		case ok && programOf[found.Line] == nil:
			programOf[found.Line] = p
		case !ok && p.Skipped:
			unconfigured = append(unconfigured, *p)
		}
	}
	// The portal's own entry is served by the caddy program.
	for i, a := range apps {
		if isPortal(a) && programOf[i] == nil {
			for j := range procs {
				if strings.EqualFold(procs[j].Name, supervisor.AlwaysProtected) {
					programOf[i] = &procs[j]
					break
				}
			}
		}
	}
	out := make([]State, 0, len(apps)+len(unconfigured))
	for i, a := range apps {
		s := State{App: a, Reachable: isPortal(a) || reachable(a)}
		if p := programOf[i]; p != nil {
			s.Program, s.ProgramState = p.ID, p.State
		}
		switch {
		case isPortal(a):
			s.State = Running // this very answer proves it
		case programOf[i] != nil:
			s.State = fromProgram(programOf[i].State, s.Reachable)
		case !haveProcs && s.Reachable:
			s.State = Running
		case !haveProcs:
			s.State = Starting
		default:
			s.State = External
		}
		out = append(out, s)
	}
	for _, p := range unconfigured {
		name := p.App
		if name == "" {
			name = p.Name
		}
		out = append(out, State{
			App:   App{AppInfo: portalconfig.AppInfo{Name: name}},
			State: NotConfigured, Program: p.ID, ProgramState: p.State,
		})
	}
	return out
}

// fromProgram maps supervisord's state (and the probe) to a card's state.
func fromProgram(state string, reachable bool) string {
	switch state {
	case "RUNNING", "STARTING":
		if reachable {
			return Running
		}
		return Starting
	case "STOPPED", "EXITED", "STOPPING":
		return Stopped
	}
	return Failed // FATAL, BACKOFF, UNKNOWN
}
