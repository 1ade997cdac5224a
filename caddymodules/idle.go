package caddymodules

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/bootstatus"
	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/idle"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/redact"
)

func init() {
	caddy.RegisterModule(IdleApp{})
	caddy.RegisterModule(IdleActivity{})
	caddy.RegisterModule(PortalIdleAPI{})
}

// idleCounters is the one activity record of the process: every app
// server's idle_activity handler adds to it, the idle app reads it. A
// package variable, so that it survives reloads and costs a request one
// atomic add (idle.BenchmarkCounters).
var idleCounters idle.Counters

// runningIdle is the idle app of the running config (nil when none), which
// /api/idle reads and postpones.
var runningIdle atomic.Pointer[IdleApp]

// idleAppFor is the adapter's idle app: the settings stay {env.…}
// placeholders (the command may hold anything), resolved at Provision.
func idleAppFor(plan *portalconfig.Plan) IdleApp {
	s := plan.Settings
	return IdleApp{
		StopAfter: "{env." + idle.StopAfterEnv + "}", GPUUtil: "{env." + idle.GPUUtilEnv + "}",
		Command: "{env." + idle.CommandEnv + "}", LogDir: s.LogDir,
		ProvisioningLock:  s.ProvisioningLock,
		ProvisioningState: "{env." + provstatus.StateDirEnv + "}",
	}
}

// withIdle adds idle auto-stop to an adapted config (/api/idle is in the
// route table: the dashboard asks it; off, it says so). When
// PORTAL_IDLE_STOP_AFTER turns auto-stop on (a bad PORTAL_IDLE_* is an
// error naming the variable, so a typo fails `caddy portal check` and a
// reload), it adds the idle app and an idle_activity handler on each app
// server right after authentication: a request refused there is not
// activity, so a scanner cannot keep the instance alive.
func withIdle(cfg *caddy.Config, plan *portalconfig.Plan, env portalconfig.Environ, warns *[]caddyconfig.Warning) error {
	ic, err := idle.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	var httpApp caddyhttp.App
	if err := json.Unmarshal(cfg.AppsRaw["http"], &httpApp); err != nil {
		return fmt.Errorf("idle: re-reading the http app: %w", err)
	}
	if ic.Enabled() {
		for _, sp := range plan.Servers {
			srv := httpApp.Servers[sp.ServerName()]
			if srv == nil {
				continue
			}
			at := 0
			for i, r := range srv.Routes {
				for _, h := range r.HandlersRaw {
					if bytes.Contains(h, []byte(`"handler":"vastauth"`)) {
						at = i + 1
					}
				}
			}
			srv.Routes = slices.Insert(srv.Routes, at, idleActivityRoute(sp, warns))
		}
		cfg.AppsRaw["idle"] = caddyconfig.JSON(idleAppFor(plan), warns)
	}
	cfg.AppsRaw["http"] = caddyconfig.JSON(httpApp, warns)
	return nil
}

// idleActivityRoute counts a request that passed authentication on an app
// server. On the portal's own port only streams count (an open dashboard
// polls /api/metrics every second and would keep the instance busy forever).
func idleActivityRoute(sp portalconfig.ServerPlan, warns *[]caddyconfig.Warning) caddyhttp.Route {
	return caddyhttp.Route{HandlersRaw: []json.RawMessage{
		caddyconfig.JSONModuleObject(IdleActivity{StreamsOnly: sp.App.IsPortal()}, "handler", "idle_activity", warns),
	}}
}

// IdleApp stops the instance after a window without activity (idle
// package; docs/idle.md). Off unless PORTAL_IDLE_STOP_AFTER is set. Each
// field may be a placeholder, resolved at Provision.
type IdleApp struct {
	// StopAfter is the window (PORTAL_IDLE_STOP_AFTER); empty is off.
	StopAfter string `json:"stop_after,omitempty"`
	// GPUUtil is the idle threshold in percent (PORTAL_IDLE_GPU_UTIL).
	GPUUtil string `json:"gpu_util,omitempty"`
	// Command is run by bash once per idle period (PORTAL_IDLE_COMMAND).
	Command string `json:"command,omitempty"`
	// LogDir receives the warning line in each of its *.log files.
	LogDir string `json:"log_dir,omitempty"`
	// ProvisioningLock exists while provisioning runs. Default: bootstatus's.
	ProvisioningLock string `json:"provisioning_lock,omitempty"`
	// ProvisioningState is the provisioner's state directory (its
	// progress.json says "running" while it runs). Default: provstatus's.
	ProvisioningState string `json:"provisioning_state,omitempty"`
	// ProcRoot is where SSH sessions are looked for. Default: /proc.
	ProcRoot string `json:"proc_root,omitempty"`

	cfg    idle.Config
	logger *zap.Logger
	now    func() time.Time

	mu      *sync.Mutex
	machine *idle.Machine
	cancel  context.CancelFunc
	done    chan struct{}
}

// CaddyModule returns the Caddy module information.
func (IdleApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "idle", New: func() caddy.Module { return new(IdleApp) }}
}

// Provision resolves the placeholders and reads the settings.
func (a *IdleApp) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.now = time.Now
	a.mu = new(sync.Mutex)
	repl := caddy.NewReplacer()
	vals := map[string]string{
		idle.StopAfterEnv: repl.ReplaceAll(a.StopAfter, ""),
		idle.GPUUtilEnv:   repl.ReplaceAll(a.GPUUtil, ""),
		idle.CommandEnv:   repl.ReplaceAll(a.Command, ""),
	}
	cfg, err := idle.FromEnv(func(k string) string { return vals[k] })
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	a.cfg = cfg
	a.LogDir = repl.ReplaceAll(a.LogDir, "")
	if a.ProvisioningLock = repl.ReplaceAll(a.ProvisioningLock, ""); a.ProvisioningLock == "" {
		a.ProvisioningLock = bootstatus.Default().LockFile
	}
	a.ProvisioningState = provstatus.Path(repl.ReplaceAll(a.ProvisioningState, ""))
	if a.ProcRoot == "" {
		a.ProcRoot = "/proc"
	}
	return nil
}

// tick is how often activity is sampled: a twentieth of the window,
// between 1 and 10 seconds.
func (a *IdleApp) tick() time.Duration {
	return min(max(a.cfg.StopAfter/20, time.Second), 10*time.Second)
}

// Start begins watching when auto-stop is on.
func (a *IdleApp) Start() error {
	a.machine = idle.New(a.cfg, a.now())
	runningIdle.Store(a)
	if !a.cfg.Enabled() {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	a.logger.Info("idle auto-stop on", zap.Duration("stop_after", a.cfg.StopAfter), zap.Float64("gpu_util_percent", a.cfg.GPUUtil),
		zap.Duration("warn_before", a.cfg.WarnBefore()))
	go a.run(ctx)
	return nil
}

// Stop ends the watcher (a reload starts the window anew: never earlier).
func (a *IdleApp) Stop() error {
	runningIdle.CompareAndSwap(a, nil)
	if a.cancel != nil {
		a.cancel()
		<-a.done
	}
	return nil
}

func (a *IdleApp) run(ctx context.Context) {
	defer close(a.done)
	defer func() {
		if r := recover(); r != nil {
			a.logger.Error("idle watcher panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		}
	}()
	t := time.NewTicker(a.tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		act := a.observe(ctx)
		a.mu.Lock()
		now := a.now()
		d := a.machine.Observe(now, act)
		st := a.machine.Status(now)
		a.mu.Unlock()
		if d.Warn {
			a.warn(st)
		}
		if d.Stop {
			a.stop(ctx)
		}
	}
}

// observe gathers one activity sample.
func (a *IdleApp) observe(ctx context.Context) idle.Activity {
	req, streams := idleCounters.Read()
	act := idle.Activity{Requests: req, Streams: streams, SSHSessions: idle.SSHSessions(a.ProcRoot), GPUUtil: busiestGPU(ctx)}
	if _, err := os.Stat(a.ProvisioningLock); err == nil {
		act.Provisioning = true
	} else if st, err := provstatus.Read(a.ProvisioningState); err == nil && st.State == provstatus.Running {
		act.Provisioning = true
	}
	return act
}

// busiestGPU is the highest GPU utilisation of the shared metrics
// collector's latest sample; nil without GPUs.
func busiestGPU(ctx context.Context) *float64 {
	var out *float64
	gpuCollectors.each(func(c *gpumetrics.Collector) bool {
		s := c.Latest(ctx).Snapshot
		for _, g := range s.GPUs {
			if g.UtilizationPercent != nil && (out == nil || *g.UtilizationPercent > *out) {
				u := *g.UtilizationPercent
				out = &u
			}
		}
		return false
	})
	return out
}

// warn writes the warning to the portal's log and appends it to every log
// the log viewer shows.
func (a *IdleApp) warn(st idle.Status) {
	left := a.cfg.WarnBefore()
	if st.StopsAt != nil {
		left = st.StopsAt.Sub(a.now()).Round(time.Second)
	}
	msg := fmt.Sprintf("idle auto-stop: no activity for %s; %s runs in %s unless something happens (postpone on the dashboard's Overview)",
		time.Duration(st.IdleSeconds*float64(time.Second)).Round(time.Second), idle.CommandEnv, left)
	a.logger.Warn(msg)
	files, _ := filepath.Glob(filepath.Join(a.LogDir, "*.log"))
	line := []byte(time.Now().UTC().Format(time.RFC3339) + " [portal] " + msg + "\n")
	for _, f := range files {
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			continue
		}
		_, _ = fh.Write(line)
		_ = fh.Close()
	}
}

// maxCommandOutput bounds what is kept of the command's output.
const maxCommandOutput = 4 << 10

// commandTimeout bounds one run of the stop command.
const commandTimeout = 5 * time.Minute

// stop runs the command once and logs its outcome.
func (a *IdleApp) stop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	a.logger.Warn("idle auto-stop: running the stop command", zap.String("command", redact.URLs(a.cfg.Command)))
	cmd := exec.CommandContext(ctx, "bash", "-c", a.cfg.Command)
	var out limitedOutput
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	outcome := "exit status 0"
	if err != nil {
		outcome = err.Error()
	}
	text := redact.URLs(strings.TrimSpace(out.String()))
	if err != nil {
		a.logger.Error("idle auto-stop: the stop command failed; it runs again only after new activity and another idle window",
			zap.String("outcome", outcome), zap.String("output", text))
	} else {
		a.logger.Warn("idle auto-stop: the stop command succeeded", zap.String("output", text))
	}
	if text != "" {
		outcome += ": " + clipText(text, 300)
	}
	a.mu.Lock()
	a.machine.Ran(outcome)
	a.mu.Unlock()
}

// limitedOutput keeps the first maxCommandOutput bytes of a command's output.
type limitedOutput struct{ bytes.Buffer }

func (l *limitedOutput) Write(p []byte) (int, error) {
	if room := maxCommandOutput - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// status and postpone are what /api/idle calls.
func (a *IdleApp) status() idle.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.machine.Status(a.now())
}

func (a *IdleApp) postpone() idle.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.machine.Postpone(now)
	a.logger.Info("idle auto-stop postponed from the dashboard", zap.Duration("by", a.cfg.StopAfter))
	return a.machine.Status(now)
}

// IdleActivity counts requests (and brackets streams) for the idle app.
// It adds one atomic increment to a request; a WebSocket upgrade or an
// event-stream request adds a second pair for as long as it is open.
type IdleActivity struct {
	// StreamsOnly counts only streams, not plain requests (the portal's
	// own port: its dashboard polls).
	StreamsOnly bool `json:"streams_only,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (IdleActivity) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.idle_activity", New: func() caddy.Module { return new(IdleActivity) }}
}

// isStream reports a WebSocket upgrade or an event-stream request. The
// header map is read by its canonical keys directly (Header.Get would
// canonicalise them on every request).
func isStream(r *http.Request) bool {
	if len(r.Header["Upgrade"]) > 0 {
		return true
	}
	for _, v := range r.Header["Accept"] {
		if strings.Contains(v, "text/event-stream") {
			return true
		}
	}
	return false
}

// ServeHTTP counts and passes the request on.
func (h IdleActivity) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !h.StreamsOnly {
		idleCounters.Request()
	}
	if isStream(r) {
		idleCounters.StreamOpen()
		defer idleCounters.StreamClose()
	}
	return next.ServeHTTP(w, r)
}

// PortalIdleAPI serves GET /api/idle (idle.Status) and POST
// /api/idle/postpone, refused cross-site like the processes API.
type PortalIdleAPI struct{}

// CaddyModule returns the Caddy module information.
func (PortalIdleAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_idle", New: func() caddy.Module { return new(PortalIdleAPI) }}
}

// ServeHTTP answers the idle API.
func (PortalIdleAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	a := runningIdle.Load()
	if r.URL.Path == "/api/idle/postpone" {
		if refused, err := refuseAction(w, r); refused {
			return err
		}
		if a == nil || !a.cfg.Enabled() {
			return writeJSONError(w, http.StatusConflict, "idle auto-stop is off ("+idle.StopAfterEnv+" is not set)")
		}
		return writeJSON(w, http.StatusOK, a.postpone())
	}
	return serveReadOnly(w, r, func() any {
		if a == nil {
			return idle.New(idle.Config{}, time.Now()).Status(time.Now())
		}
		return a.status()
	})
}

// Interface guards
var (
	_ caddy.App                   = (*IdleApp)(nil)
	_ caddy.Provisioner           = (*IdleApp)(nil)
	_ caddyhttp.MiddlewareHandler = IdleActivity{}
	_ caddyhttp.MiddlewareHandler = PortalIdleAPI{}
)
