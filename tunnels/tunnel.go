package tunnels

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// State is where a tunnel is in its life.
type State string

// States shown by the API.
const (
	StateStarting    State = "starting"     // process started, no ready URL yet
	StateRunning     State = "running"      // edge connection registered, URL published
	StateRestarting  State = "restarting"   // waiting out the backoff after a failure
	StateRateLimited State = "rate_limited" // waiting out Cloudflare's rate limit
	StateFailed      State = "failed"       // a failure a retry cannot fix
	StateStopped     State = "stopped"
)

// Status is a snapshot of one tunnel, as the API returns it. It never
// carries a token.
type Status struct {
	Type   Kind   `json:"type"`
	Target string `json:"target,omitempty"`
	// URL is published only once /ready reports an edge connection: a
	// trycloudflare URL opened earlier fails, and the failed DNS answer is
	// cached for 30 minutes.
	URL       string     `json:"url,omitempty"`
	State     State      `json:"state"`
	LastError string     `json:"last_error,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	// CooldownUntil is set while rate_limited.
	CooldownUntil *time.Time `json:"cooldown_until,omitempty"`
	// Restarts counts process restarts (failures and refreshes).
	Restarts int `json:"restarts"`
	// Pid is the running cloudflared's process id (0 when none).
	Pid int `json:"pid,omitempty"`
	// Ingress lists a named tunnel's hostname → service rules.
	Ingress []IngressRule `json:"ingress,omitempty"`
}

// errRefresh ends a run on request; it is not a failure.
var errRefresh = errors.New("refresh requested")

// tunnel is one supervised cloudflared. Its owners are guarded by the
// Manager's mutex; its status by its own.
type tunnel struct {
	m      *Manager
	spec   Spec
	owners map[string]bool

	refreshC chan struct{} // buffered 1: a pending refresh request

	// cancel and done belong to the current supervisor goroutine; nil when
	// none was started.
	cancel context.CancelFunc
	ctx    context.Context
	done   chan struct{}

	mu sync.Mutex
	st Status
}

func newTunnel(m *Manager, spec Spec) *tunnel {
	return &tunnel{
		m: m, spec: spec, owners: map[string]bool{},
		refreshC: make(chan struct{}, 1),
		st:       Status{Type: spec.Kind, Target: spec.Target, State: StateStarting},
	}
}

// start prepares a new supervisor run; the caller runs t.run in a goroutine.
func (t *tunnel) start() {
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.done = make(chan struct{})
	t.update(func(s *Status) { s.State = StateStarting })
}

// alive reports whether a supervisor goroutine is running.
func (t *tunnel) alive() bool {
	if t.done == nil {
		return false
	}
	select {
	case <-t.done:
		return false
	default:
		return true
	}
}

// stop cancels the supervisor and waits for its process to be gone.
func (t *tunnel) stop() {
	if t.cancel != nil {
		t.cancel()
		<-t.done
	}
	t.update(func(s *Status) {
		s.State, s.URL, s.Pid, s.StartedAt, s.CooldownUntil = StateStopped, "", 0, nil, nil
	})
}

func (t *tunnel) requestRefresh() {
	select {
	case t.refreshC <- struct{}{}:
	default: // one already pending
	}
}

func (t *tunnel) status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.st
	s.Ingress = append([]IngressRule(nil), t.st.Ingress...)
	return s
}

func (t *tunnel) update(f func(*Status)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.st)
}

func (t *tunnel) setFailed(err error) {
	t.update(func(s *Status) {
		s.State, s.LastError, s.URL, s.Pid, s.StartedAt = StateFailed, t.redact(err.Error()), "", 0, nil
	})
}

// redact removes the named tunnel's token from text that came from the
// child (cloudflared does not print it, but an error might echo it).
func (t *tunnel) redact(s string) string {
	if t.spec.Token == "" {
		return s
	}
	return strings.ReplaceAll(s, t.spec.Token, "[REDACTED]")
}

// run is the supervisor: it restarts failed runs with backoff until its
// context ends or a run returns ErrDoNotRestart. Panics are recovered so a
// bug in one tunnel cannot take the server down.
func (t *tunnel) run() {
	defer close(t.done)
	log := t.m.log.With(zap.String("tunnel", t.spec.label()))
	defer func() {
		if r := recover(); r != nil {
			log.Error("tunnel supervisor panicked", zap.Any("panic", r))
			t.setFailed(fmt.Errorf("internal error: %v", r))
		}
	}()
	ctx, cfg, clock := t.ctx, t.m.Config(), t.m.clock
	bo := newBackoff(cfg.BackoffBase.Std(), cfg.BackoffMax.Std(), cfg.FailureDecay.Std())
	for ctx.Err() == nil {
		if t.spec.Kind == Quick {
			if until := t.m.cool.end(); until.After(clock.Now()) {
				u := until
				t.update(func(s *Status) { s.State, s.CooldownUntil, s.URL = StateRateLimited, &u, "" })
				log.Info("waiting for the quick tunnel rate limit to pass", zap.Time("until", until))
				select {
				case <-ctx.Done():
					return
				case <-clock.After(until.Sub(clock.Now())):
				}
				t.update(func(s *Status) { s.CooldownUntil = nil })
			}
		}
		err := t.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		now := clock.Now()
		switch {
		case errors.Is(err, errRefresh):
			log.Info("restarting cloudflared for a new URL")
			t.m.writeLog(t.spec.label(), "portal: restarting for a new URL (refresh)")
			t.update(func(s *Status) { s.Restarts++ })
		case errors.Is(err, ErrDoNotRestart):
			log.Error("tunnel failed; not restarting", zap.Error(err))
			t.m.writeLog(t.spec.label(), "portal: failed, not restarting: "+t.redact(err.Error()))
			t.setFailed(err)
			return
		case errors.Is(err, ErrRateLimited):
			until := now.Add(cfg.RateLimitCooldown.Std())
			if perr := t.m.cool.extend(until); perr != nil {
				log.Warn("cannot persist the rate-limit cooldown", zap.Error(perr))
			}
			log.Warn("Cloudflare rate-limited quick tunnel creation", zap.Time("retry_at", until))
			t.m.writeLog(t.spec.label(), "portal: rate limited by Cloudflare, retrying after "+until.UTC().Format(time.RFC3339))
			t.update(func(s *Status) { s.LastError, s.Restarts = t.redact(err.Error()), s.Restarts+1 })
		default:
			wait := bo.failure(now)
			msg := t.redact(err.Error())
			log.Warn("cloudflared failed; restarting", zap.String("reason", msg), zap.Duration("backoff", wait))
			t.m.writeLog(t.spec.label(), fmt.Sprintf("portal: restarting in %v: %s", wait.Round(time.Millisecond), msg))
			t.update(func(s *Status) {
				s.State, s.LastError, s.URL, s.Pid, s.StartedAt = StateRestarting, msg, "", 0, nil
				s.Restarts++
			})
			select {
			case <-ctx.Done():
				return
			case <-clock.After(wait):
			case <-t.refreshC: // a refresh skips the wait
			}
		}
	}
}

// args is cloudflared's command line. The metrics server is bound to
// loopback explicitly: cloudflared's container default is 0.0.0.0, which
// would publish its unauthenticated debug endpoints. The token is never
// here: `ps` shows argv to every user.
func (t *tunnel) args(metrics string) []string {
	a := []string{"tunnel", "--no-autoupdate", "--metrics", metrics, "--protocol", t.m.Config().Protocol}
	if t.spec.Kind == Named {
		return append(a, "run")
	}
	if strings.HasPrefix(t.spec.Target, "https://") {
		// Targets are on this machine (NormalizeTarget) and served with the
		// instance's own certificate, which no public CA signed.
		a = append(a, "--no-tls-verify")
	}
	return append(a, "--url", t.spec.Target)
}

// env is the child's environment: ours without any tunnel token, plus
// TUNNEL_TOKEN for the named tunnel only.
func (t *tunnel) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "TUNNEL_TOKEN" || k == "CF_TUNNEL_TOKEN" {
			continue
		}
		env = append(env, kv)
	}
	if t.spec.Kind == Named {
		env = append(env, "TUNNEL_TOKEN="+t.spec.Token)
	}
	return env
}

// runOnce runs one cloudflared process until it exits, is told to stop or
// refresh, never becomes ready, or stays unready too long. It always
// returns with the process and its group gone.
func (t *tunnel) runOnce(ctx context.Context) error {
	m, cfg := t.m, t.m.Config()
	label := t.spec.label()
	if t.spec.Kind == Quick && !m.waitStartSlot(ctx.Done()) {
		return ctx.Err()
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return fmt.Errorf("finding a metrics port: %w", err)
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(port)

	var (
		out          = newTail(8)
		sawRateLimit atomic.Bool
		lineURL      atomic.Value // string
	)
	lw := &lineWriter{emit: func(line string) {
		line = t.redact(line)
		m.writeLog(label, line)
		out.add(line)
		if isRateLimitLine(line) {
			sawRateLimit.Store(true)
		}
		if u, ok := quickTunnelURLFromLine(line); ok {
			lineURL.Store(u)
		}
	}}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(runCtx, cfg.Cloudflared, t.args(metricsAddr)...)
	cmd.Env = t.env()
	cmd.Stdout, cmd.Stderr = lw, lw
	// Own process group: SIGTERM goes to -pid, so helpers cloudflared
	// spawned die with it and cannot keep our pipes (and the tunnel) open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	// After KillGrace, Wait kills the leader with SIGKILL and closes the
	// pipes; reap() then SIGKILLs whatever is left of the group.
	cmd.WaitDelay = cfg.KillGrace.Std()

	t.update(func(s *Status) { s.State, s.URL, s.StartedAt, s.Pid = StateStarting, "", nil, 0 })
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%w: %w", ErrDoNotRestart, binaryMissing(cfg.Cloudflared, err))
		}
		return fmt.Errorf("starting cloudflared: %w", err)
	}
	pid := cmd.Process.Pid
	m.writeLog(label, "portal: started cloudflared pid "+strconv.Itoa(pid)+" ("+strings.Join(t.args(metricsAddr), " ")+")")
	t.update(func(s *Status) { s.Pid = pid })
	waitC := make(chan error, 1)
	go func() { waitC <- cmd.Wait() }() // ends once the process is reaped (bounded by WaitDelay)

	reap := func(werr error) {
		lw.Flush()
		// The leader is gone; anything left in its group is killed now.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		t.update(func(s *Status) {
			s.Pid = 0
			// The process and its URL are gone: never report "running"
			// without one. The supervisor (or stop) sets the next state.
			if s.State == StateRunning || s.State == StateStarting {
				s.State, s.URL, s.StartedAt = StateRestarting, "", nil
			}
		})
		m.writeLog(label, "portal: cloudflared pid "+strconv.Itoa(pid)+" ended: "+exitText(werr))
	}
	// halt stops the process and returns reason once it is gone.
	halt := func(reason error) error {
		cancel()
		reap(<-waitC)
		return reason
	}

	mc := newMetricsClient(metricsAddr)
	defer mc.close()
	tick := time.NewTicker(cfg.PollInterval.Std())
	defer tick.Stop()
	readyDeadline := m.clock.After(cfg.ReadyTimeout.Std())
	var (
		running      bool
		unreadySince time.Time
		ingressAt    time.Time
		ingress      []IngressRule
	)
	for {
		select {
		case werr := <-waitC:
			reap(werr)
			if sawRateLimit.Load() {
				return fmt.Errorf("%w: %s", ErrRateLimited, out)
			}
			return fmt.Errorf("cloudflared exited (%s): %s", exitText(werr), out)
		case <-ctx.Done():
			return halt(ctx.Err())
		case <-t.refreshC:
			return halt(errRefresh)
		case <-readyDeadline:
			return halt(fmt.Errorf("no ready tunnel URL within %v: %s", cfg.ReadyTimeout, out))
		case <-tick.C:
		}

		pctx, pcancel := context.WithTimeout(runCtx, 2*time.Second)
		ready, _ := mc.ready(pctx)
		var url string
		if t.spec.Kind == Quick {
			url, _ = mc.quickTunnelURL(pctx)
			if url == "" {
				url, _ = lineURL.Load().(string)
			}
		} else if ready && (ingress == nil || m.clock.Now().Sub(ingressAt) > 10*time.Second) {
			if rules, err := mc.ingress(pctx); err == nil {
				ingress, ingressAt = rules, m.clock.Now()
			}
		}
		pcancel()
		if t.spec.Kind == Named && len(ingress) > 0 {
			url = "https://" + ingress[0].Hostname
		}

		now := m.clock.Now()
		switch {
		case ready && (url != "" || t.spec.Kind == Named):
			unreadySince = time.Time{}
			if !running {
				running, readyDeadline = true, nil
				started := now
				m.log.Info("tunnel ready", zap.String("tunnel", label), zap.String("url", url))
				m.writeLog(label, "portal: ready at "+url)
				t.update(func(s *Status) { s.State, s.StartedAt = StateRunning, &started })
			}
			rules := append([]IngressRule(nil), ingress...)
			t.update(func(s *Status) { s.URL, s.Ingress = url, rules })
		case running:
			if unreadySince.IsZero() {
				unreadySince = now
			} else if now.Sub(unreadySince) >= cfg.UnreadyRestart.Std() {
				return halt(fmt.Errorf("no edge connection: /ready unready for %v", cfg.UnreadyRestart))
			}
		}
	}
}

// exitText describes how a process ended.
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
	}
	return err.Error()
}
