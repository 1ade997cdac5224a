// Package idle decides when an instance has been idle long enough to stop
// it: no request reached an app through the portal, no WebSocket or event
// stream was open, no SSH session was logged in, GPU utilisation stayed
// under a threshold, and provisioning was not running, for a whole window.
// It is plain logic with an injected clock; caddymodules/idle.go feeds it
// and runs the stop command it asks for.
package idle

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

// The settings, read from the environment by FromEnv.
const (
	// StopAfterEnv is the idle window (a duration such as 30m); empty or
	// 0 turns idle auto-stop off, which is the default.
	StopAfterEnv = "PORTAL_IDLE_STOP_AFTER"
	// GPUUtilEnv is the GPU utilisation (percent) under which the GPUs
	// count as idle. Default: DefaultGPUUtil.
	GPUUtilEnv = "PORTAL_IDLE_GPU_UTIL"
	// CommandEnv is the bash command run once the window has passed.
	// Default: DefaultCommand.
	CommandEnv = "PORTAL_IDLE_COMMAND"
)

// DefaultGPUUtil is PORTAL_IDLE_GPU_UTIL's default, in percent.
const DefaultGPUUtil = 5.0

// DefaultCommand stops this instance with the Vast.ai CLI, authenticated
// by the instance's own API key (both variables are set by Vast.ai in
// every container).
const DefaultCommand = `vastai stop instance "$CONTAINER_ID" --api-key "$CONTAINER_API_KEY"`

// MaxWarnBefore is how long before the stop the warning is written, at
// most; a short window warns at a quarter of the window before.
const MaxWarnBefore = 5 * time.Minute

// minWindow keeps a typo ("30s" meant as minutes) from stopping an
// instance before anyone could open it.
const minWindow = 10 * time.Second

// Config is the idle settings.
type Config struct {
	// StopAfter is the idle window; 0 is off.
	StopAfter time.Duration
	// GPUUtil is the threshold in percent.
	GPUUtil float64
	// Command is run with bash -c once per idle period.
	Command string
}

// Enabled reports whether auto-stop is on.
func (c Config) Enabled() bool { return c.StopAfter > 0 }

// WarnBefore is how long before the stop the warning goes out.
func (c Config) WarnBefore() time.Duration { return min(MaxWarnBefore, c.StopAfter/4) }

// FromEnv reads the settings; each error names the variable.
func FromEnv(get func(string) string) (Config, error) {
	c := Config{GPUUtil: DefaultGPUUtil, Command: DefaultCommand}
	var ck confdecl.Check
	if v := strings.TrimSpace(get(StopAfterEnv)); v != "" {
		d, err := confdecl.ParseDuration(v)
		switch {
		case err != nil:
			ck.Failf(StopAfterEnv, "%q: %v", v, err)
		case d < 0:
			ck.Failf(StopAfterEnv, "%q: must not be negative", v)
		case d > 0 && d < minWindow:
			ck.Failf(StopAfterEnv, "%q: at least %v (or empty for off)", v, minWindow)
		default:
			c.StopAfter = d
		}
	}
	if v := strings.TrimSpace(get(GPUUtilEnv)); v != "" {
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
			ck.Failf(GPUUtilEnv, "%q: want a percentage from 0 to 100", v)
		} else {
			c.GPUUtil = f
		}
	}
	if v := get(CommandEnv); strings.TrimSpace(v) != "" {
		c.Command = v
	}
	return c, ck.Err()
}

// Counters is what the portal's request path updates: one atomic add per
// request, and one more pair for each open stream. The zero value is ready.
type Counters struct {
	requests atomic.Uint64
	streams  atomic.Int64
}

// Request notes one request that reached an app.
func (c *Counters) Request() { c.requests.Add(1) }

// StreamOpen and StreamClose bracket a WebSocket or event stream.
func (c *Counters) StreamOpen()  { c.streams.Add(1) }
func (c *Counters) StreamClose() { c.streams.Add(-1) }

// Read returns the request count so far and the streams open now.
func (c *Counters) Read() (requests uint64, streams int64) {
	return c.requests.Load(), c.streams.Load()
}

// Activity is one observation of the instance.
type Activity struct {
	// Requests is the running count of requests (Counters.Read); a change
	// since the last observation is activity.
	Requests uint64
	// Streams open now.
	Streams int64
	// SSHSessions logged in now.
	SSHSessions int
	// GPUUtil is the busiest GPU's utilisation; nil without a GPU.
	GPUUtil *float64
	// Provisioning is true while provisioning runs.
	Provisioning bool
}

// Decision is what the caller must do after an observation.
type Decision struct {
	// Warn: write the "stops soon" warning (once per idle period).
	Warn bool
	// Stop: run the command now (once per idle period).
	Stop bool
}

// Machine is the state machine. Not safe for concurrent use: the caller
// serialises Observe, Postpone and Status.
type Machine struct {
	cfg Config
	// idleSince is when the current idle period began (the last activity).
	idleSince time.Time
	// busy is what kept the instance busy at the last observation.
	busy         []string
	lastRequests uint64
	seen         bool
	warned, ran  bool
	// RanAt and Outcome describe the last run of the command.
	ranAt   time.Time
	outcome string
}

// New returns a machine whose first idle period starts at now (a portal
// that just started counts as active).
func New(cfg Config, now time.Time) *Machine { return &Machine{cfg: cfg, idleSince: now} }

// Observe feeds one observation taken at now and returns what to do.
func (m *Machine) Observe(now time.Time, a Activity) Decision {
	m.busy = m.busy[:0]
	if m.seen && a.Requests != m.lastRequests {
		m.busy = append(m.busy, "requests")
	}
	m.lastRequests, m.seen = a.Requests, true
	if a.Streams > 0 {
		m.busy = append(m.busy, fmt.Sprintf("%d open stream(s)", a.Streams))
	}
	if a.SSHSessions > 0 {
		m.busy = append(m.busy, fmt.Sprintf("%d SSH session(s)", a.SSHSessions))
	}
	if a.GPUUtil != nil && *a.GPUUtil >= m.cfg.GPUUtil {
		m.busy = append(m.busy, fmt.Sprintf("GPU at %.0f%%", *a.GPUUtil))
	}
	if a.Provisioning {
		m.busy = append(m.busy, "provisioning")
	}
	if len(m.busy) > 0 || !m.cfg.Enabled() {
		m.idleSince, m.warned, m.ran = now, false, false
		return Decision{}
	}
	var d Decision
	idle := now.Sub(m.idleSince)
	if !m.warned && idle >= m.cfg.StopAfter-m.cfg.WarnBefore() {
		m.warned, d.Warn = true, true
	}
	if !m.ran && idle >= m.cfg.StopAfter {
		m.ran, d.Stop = true, true
		m.ranAt = now
	}
	return d
}

// Postpone restarts the idle window at now: the stop moves one whole
// window later, and the warning may come again.
func (m *Machine) Postpone(now time.Time) {
	m.idleSince, m.warned, m.ran = now, false, false
}

// Ran records the command's outcome for Status.
func (m *Machine) Ran(outcome string) { m.outcome = outcome }

// Status is GET /api/idle.
type Status struct {
	Enabled bool `json:"enabled"`
	// IdleSeconds is how long the instance has been idle (0 when busy).
	IdleSeconds float64 `json:"idle_seconds"`
	// StopAfterSeconds is the window; StopsAt when the command will run
	// if nothing happens (absent when off, busy, or already run).
	StopAfterSeconds float64    `json:"stop_after_seconds"`
	StopsAt          *time.Time `json:"stops_at,omitempty"`
	// GPUUtilThreshold is the percentage under which GPUs count as idle.
	GPUUtilThreshold float64 `json:"gpu_util_threshold"`
	// Busy lists what keeps the instance busy now.
	Busy []string `json:"busy"`
	// Ran is true once the command ran in this idle period; LastRun and
	// LastOutcome describe the latest run, in any period.
	Ran         bool       `json:"ran"`
	LastRun     *time.Time `json:"last_run,omitempty"`
	LastOutcome string     `json:"last_outcome,omitempty"`
	// Summary is the dashboard's line: "idle for 12 min, stops at 30".
	Summary string `json:"summary"`
}

// Status describes the machine at now.
func (m *Machine) Status(now time.Time) Status {
	s := Status{
		Enabled: m.cfg.Enabled(), StopAfterSeconds: m.cfg.StopAfter.Seconds(),
		GPUUtilThreshold: m.cfg.GPUUtil, Busy: append([]string{}, m.busy...), Ran: m.ran, LastOutcome: m.outcome,
	}
	if !m.ranAt.IsZero() {
		t := m.ranAt.UTC()
		s.LastRun = &t
	}
	switch {
	case !s.Enabled:
		s.Summary = "idle auto-stop is off (" + StopAfterEnv + ")"
		return s
	case len(m.busy) > 0:
		s.Summary = "busy: " + strings.Join(m.busy, ", ")
		return s
	}
	idle := now.Sub(m.idleSince)
	s.IdleSeconds = idle.Seconds()
	if m.ran {
		s.Summary = fmt.Sprintf("idle for %s; the stop command ran", human(idle))
		return s
	}
	at := m.idleSince.Add(m.cfg.StopAfter).UTC()
	s.StopsAt = &at
	s.Summary = fmt.Sprintf("idle for %s, stops at %s", human(idle), human(m.cfg.StopAfter))
	return s
}

// human writes a duration the way the dashboard says it: "12 min",
// "45 s", "1 h 5 min".
func human(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	}
	h, m := int(d.Hours()), int(d.Minutes())%60
	if m == 0 {
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d h %d min", h, m)
}
