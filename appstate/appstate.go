// Package appstate tells, for each app of the portal's configuration,
// whether it is running, starting, stopped, failed, not configured or
// external, from supervisord's view of its program and a cheap TCP probe
// of its internal port made by the portal itself. It never imports Caddy.
package appstate

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/supervisor"
)

// Config is the app list and how to judge its states. supervisord's
// settings (socket, skip_dir, …) are embedded: this JSON holds them at its
// top level, as the processes handler's does.
type Config struct {
	supervisor.Config
	// Apps is every app of the configuration, in its order, as /api/apps
	// reports it; the portal_yaml adapter writes it from its plan.
	// Default: none
	Apps []App `json:"apps,omitempty"`
	// ProbeTimeout bounds one TCP connect to an app's internal port.
	// Default: 300ms
	ProbeTimeout confdecl.Duration `json:"probe_timeout,omitempty"`
	// ProbeCache is how long a probe's answer is reused; at most 2s, so a
	// card never lags its app by more. Default: 2s
	ProbeCache confdecl.Duration `json:"probe_cache,omitempty"`
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
const maxProbeCache = confdecl.Duration(2 * time.Second)

// Default is the configuration used for every zero field.
func Default() Config {
	return Config{
		Config:           supervisor.Default(),
		ProbeTimeout:     confdecl.Duration(300 * time.Millisecond),
		ProbeCache:       maxProbeCache,
		ProbeConcurrency: 8,
	}
}

// Check checks the configuration; each message names the JSON field.
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var check confdecl.Check
	if c.ProbeTimeout != 0 {
		check.DurationAtLeast("probe_timeout", c.ProbeTimeout, confdecl.Duration(time.Millisecond))
	}
	if c.ProbeCache < 0 || c.ProbeCache > maxProbeCache {
		check.Failf("probe_cache", "must be at most %v, got %v", maxProbeCache, c.ProbeCache)
	}
	check.NotNegative("probe_concurrency", int64(c.ProbeConcurrency))
	for i, a := range c.Apps {
		if strings.TrimSpace(a.Name) == "" && strings.TrimSpace(a.Key) == "" {
			check.Failf("apps", "entry %d: name: missing", i+1)
		}
		if a.InternalPort < 0 || a.InternalPort > 65535 {
			check.Failf("apps", "entry %d %q: internal_port %d: want 1-65535", i+1, a.Name, a.InternalPort)
		}
	}
	return errors.Join(c.Config.Check(), check.Err())
}

// The states of an app card (docs/processes.md).
const (
	Running       = "running"
	Starting      = "starting"
	Stopped       = "stopped"
	Failed        = "failed"
	NotConfigured = "not_configured"
	External      = "external"
	NotAnswering  = "not_answering"
)

// State is one entry of /api/apps.
type State struct {
	App
	// State is one of the seven constants above.
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
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	confdecl.FillDefaults(&cfg, Default())
	procs, err := supervisor.New(cfg.Config)
	if err != nil {
		return nil, err
	}
	return &Tracker{cfg: cfg, procs: procs, prober: newProber(cfg.ProbeTimeout.Std(), cfg.ProbeCache.Std(), cfg.ProbeConcurrency)}, nil
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
	addrs := probeAddrs(t.cfg.Apps)
	open := t.prober.probe(ctx, addrs)
	reachable := make([]bool, len(addrs))
	for i, addr := range addrs {
		reachable[i] = addr != "" && open[addr]
	}
	return derive(t.cfg.Apps, procs, haveProcs, reachable), supervisorErr
}

// probeAddrs gives, for each app, where it listens: hostname:internal_port,
// or "" for none. A link-only entry that shares a proxied app's external
// port (Jupyter Terminal beside Jupyter) is served by that app, so its
// upstream is probed, not the portal's own listener. The portal entry is
// not probed: this binary serves it, and it is answering.
func probeAddrs(apps []App) []string {
	proxiedOn := map[int]App{}
	for _, a := range apps {
		if _, seen := proxiedOn[a.ExternalPort]; a.Proxied && !seen {
			proxiedOn[a.ExternalPort] = a
		}
	}
	out := make([]string, len(apps))
	for i, a := range apps {
		if target, ok := proxiedOn[a.ExternalPort]; ok && !a.Proxied {
			a = target
		}
		if isPortal(a) || a.InternalPort <= 0 || a.InternalPort > 65535 {
			continue
		}
		host := strings.Trim(a.Hostname, "[]")
		if host == "" {
			host = "localhost"
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(a.InternalPort))
	}
	return out
}

func isPortal(a App) bool {
	return portalconfig.App{Key: a.Key, Name: a.Name}.IsPortal()
}

// derive is the pure decision of docs/processes.md: match programs to apps
// (the rule of `caddy portal check --has`: key or display name, ignoring
// case; a skip marker's app name counts too), then map each program's
// state and the probe to the card's state.
func derive(apps []App, procs []supervisor.Process, haveProcs bool, reachable []bool) []State {
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
			// The app name exit_portal.sh wrote into the skip marker: the
			// script decides with FindLike (`exit_portal.sh comfy` means
			// "ComfyUI"), so a marker matches the same way.
			found, ok = lookup.FindLike(p.App)
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
		s := State{App: a, Reachable: isPortal(a) || i < len(reachable) && reachable[i]}
		if p := programOf[i]; p != nil {
			s.Program, s.ProgramState = p.ID, p.State
		}
		switch {
		case isPortal(a):
			s.State = Running // this very answer proves it
		case programOf[i] != nil:
			s.State = fromProgram(programOf[i].State, s.Reachable)
		// No program of this portal runs it: what answers on its port runs
		// elsewhere; nothing answering will not change by itself (it
		// used to read "starting" or "external", issue 21).
		case !haveProcs && s.Reachable:
			s.State = Running
		case s.Reachable:
			s.State = External
		default:
			s.State = NotAnswering
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

// PlanConfig is the configuration for the plan's apps: each AppInfo with
// its portal.yaml key (plan.Apps is in configuration order, one entry per
// app) and supervisord's settings from the plan.
func PlanConfig(plan *portalconfig.Plan) Config {
	s := plan.Settings
	apps := make([]App, len(plan.Apps))
	for i, info := range plan.Apps {
		apps[i].AppInfo = info
		if i < len(plan.Config.Apps) {
			apps[i].Key = plan.Config.Apps[i].Key
		}
	}
	return Config{
		Config: supervisor.Config{Socket: s.SupervisorSocket, SkipDir: s.SkipDir, Unstoppable: s.Unstoppable},
		Apps:   apps,
	}
}
