package tunnels

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Errors a caller can tell apart with errors.Is.
var (
	// ErrDoNotRestart marks a run error that a retry cannot fix (suture's
	// convention): the supervisor marks the tunnel failed and stops.
	ErrDoNotRestart = errors.New("not restartable")
	// ErrBinaryMissing: the cloudflared binary cannot be found or run.
	ErrBinaryMissing = errors.New("cloudflared binary not available")
	// ErrRateLimited: Cloudflare refused to create a quick tunnel (429).
	ErrRateLimited = errors.New("quick tunnel creation rate limited by Cloudflare")
	// ErrNotFound: no tunnel for that target.
	ErrNotFound = errors.New("no such tunnel")
	// ErrClosed: the manager has been closed.
	ErrClosed = errors.New("tunnel manager closed")
	// ErrTooManyTunnels: Create would exceed Config.MaxTunnels.
	ErrTooManyTunnels = errors.New("too many tunnels")
	// ErrSlowDown: creations come faster than Config.CreateBurst and
	// CreateInterval allow; the error is a *SlowDownError.
	ErrSlowDown = errors.New("tunnels are being created too fast")
)

// LogFileName is the file in the log directory that receives every
// cloudflared's output, one line per output line, tagged with the tunnel.
const LogFileName = "tunnels.log"

// Kind is the type of a tunnel.
type Kind string

const (
	// Quick is an account-less *.trycloudflare.com tunnel to one target.
	Quick Kind = "quick"
	// Named is the account's tunnel run from a token; its routes
	// (ingress) are configured at Cloudflare.
	Named Kind = "named"
)

// Spec identifies a tunnel to run.
type Spec struct {
	Kind Kind
	// Target is the local URL of a quick tunnel (see NormalizeTarget).
	Target string
	// Token is the named tunnel's token. It reaches cloudflared only as
	// TUNNEL_TOKEN in the child's environment and is never logged or
	// returned.
	Token string
}

// QuickSpec is the Spec of a quick tunnel to target.
func QuickSpec(target string) Spec { return Spec{Kind: Quick, Target: target} }

// NamedSpec is the Spec of the named tunnel run with token.
func NamedSpec(token string) Spec { return Spec{Kind: Named, Token: token} }

// normalize validates the spec and returns it with a canonical target.
func (s Spec) normalize() (Spec, error) {
	switch s.Kind {
	case Quick:
		t, err := NormalizeTarget(s.Target)
		if err != nil {
			return s, err
		}
		s.Target = t
		s.Token = ""
	case Named:
		if strings.TrimSpace(s.Token) == "" {
			return s, errors.New("named tunnel: empty token")
		}
		s.Target = ""
	default:
		return s, fmt.Errorf("unknown tunnel kind %q", s.Kind)
	}
	return s, nil
}

// key is the tunnel's identity: a quick tunnel is its target; a named tunnel
// is a digest of its token, so that a new token starts a new process while
// the token itself never appears in a key, log or map dump.
func (s Spec) key() string {
	if s.Kind == Named {
		sum := sha256.Sum256([]byte(s.Token))
		return "named " + hex.EncodeToString(sum[:6])
	}
	return "quick " + s.Target
}

// label names the tunnel in logs.
func (s Spec) label() string {
	if s.Kind == Named {
		return "named"
	}
	return s.Target
}

// Manager runs a set of tunnels. Each tunnel is reference-counted by owners
// (a config that wants it as a default tunnel, ownerAPI for tunnels created
// on demand), so that a reload handing a tunnel from the old config to the
// new one keeps its process and URL. A Manager is safe for concurrent use.
type Manager struct {
	cfgMu sync.RWMutex
	cfg   Config // defaults filled; Identity fixed at NewManager, the rest by Reconfigure
	log   *zap.Logger
	clock Clock

	mu       sync.Mutex
	tunnels  map[string]*tunnel
	closed   bool
	wg       sync.WaitGroup // one per tunnel goroutine
	creation tokenBucket    // API creations and refreshes; guarded by mu

	cool *cooldown

	logMu   sync.Mutex
	logFile *os.File
	logErr  error // opening tunnels.log failed; reported once

	slotMu   sync.Mutex
	nextSlot time.Time
}

// ownerAPI owns the tunnels created on demand: they live until stopped or
// until the Manager closes.
const ownerAPI = "api"

// NewManager returns a Manager for cfg (zero settings take the defaults);
// it starts nothing until Acquire or Create. log receives supervision
// events; nil discards them. The caller validates cfg.
func NewManager(cfg Config, log *zap.Logger) *Manager {
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.WithDefaults()
	m := &Manager{cfg: cfg, log: log, clock: realClock{}, tunnels: map[string]*tunnel{}}
	cool, err := loadCooldown(cfg.StateDir)
	if err != nil {
		m.log.Warn("ignoring unreadable tunnel cooldown", zap.Error(err))
	}
	m.cool = cool
	return m
}

// Config returns the effective settings (defaults filled in).
func (m *Manager) Config() Config {
	m.cfgMu.RLock()
	defer m.cfgMu.RUnlock()
	return m.cfg
}

// Reconfigure applies every setting of cfg outside its Identity (zero takes
// the default) without touching running processes: a reload that changes
// only timings or limits keeps every tunnel and URL. Timings apply from
// each tunnel's next start.
func (m *Manager) Reconfigure(cfg Config) {
	cfg = cfg.WithDefaults()
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	cfg.Cloudflared, cfg.Protocol, cfg.LogDir, cfg.StateDir = m.cfg.Cloudflared, m.cfg.Protocol, m.cfg.LogDir, m.cfg.StateDir
	m.cfg = cfg
}

// Acquire makes owner an owner of the tunnel spec describes, starting it if
// it is not running. created reports a new tunnel. A missing cloudflared
// binary leaves the tunnel listed as failed and returns ErrBinaryMissing.
func (m *Manager) Acquire(owner string, spec Spec) (st Status, created bool, err error) {
	return m.acquire(owner, spec, nil)
}

// acquire is Acquire, where admit (when given) may refuse to start the
// tunnel when it does not run; isNew says no tunnel to it exists yet.
// admit is called under m.mu.
func (m *Manager) acquire(owner string, spec Spec, admit func(isNew bool) error) (Status, bool, error) {
	spec, err := spec.normalize()
	if err != nil {
		return Status{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Status{}, false, ErrClosed
	}
	t := m.tunnels[spec.key()]
	if admit != nil && (t == nil || !t.alive()) {
		if err := admit(t == nil); err != nil {
			return Status{}, false, err
		}
	}
	created := false
	if t == nil {
		t = newTunnel(m, spec)
		m.tunnels[spec.key()] = t
		created = true
	}
	t.owners[owner] = true
	if t.alive() {
		return t.status(), created, nil
	}
	if err := m.checkBinary(); err != nil {
		t.setFailed(err)
		return t.status(), created, err
	}
	m.startLocked(t)
	return t.status(), created, nil
}

// Create starts an on-demand quick tunnel to target, owned by the API. A
// target that already has a running tunnel is answered with it. A new
// process is refused with ErrTooManyTunnels when MaxTunnels quick tunnels
// exist, and with a *SlowDownError when creations come faster than
// CreateBurst and CreateInterval allow.
func (m *Manager) Create(target string) (Status, bool, error) {
	cfg := m.Config()
	if _, err := cfg.CheckTarget(target); err != nil {
		return Status{}, false, err
	}
	return m.acquire(ownerAPI, QuickSpec(target), func(isNew bool) error {
		if isNew {
			quick := 0
			for _, o := range m.tunnels {
				if o.spec.Kind == Quick {
					quick++
				}
			}
			if quick >= cfg.MaxTunnels {
				return fmt.Errorf("%w: %d quick tunnels run, the most allowed (max_tunnels); stop one first", ErrTooManyTunnels, quick)
			}
		}
		return m.takeCreation(cfg)
	})
}

// takeCreation spends one creation from the bucket, under m.mu.
func (m *Manager) takeCreation(cfg Config) error {
	wait, ok := m.creation.take(m.clock.Now(), cfg.CreateBurst, cfg.CreateInterval.Std())
	if !ok {
		return &SlowDownError{Wait: wait, Burst: cfg.CreateBurst, Interval: cfg.CreateInterval.Std()}
	}
	return nil
}

// checkBinary resolves the cloudflared binary, so that a missing one is a
// clear error at once rather than a restart loop.
func (m *Manager) checkBinary() error {
	bin := m.Config().Cloudflared
	if _, err := exec.LookPath(bin); err != nil {
		return binaryMissing(bin, err)
	}
	return nil
}

// binaryFix is what to do about ErrBinaryMissing, said with it.
const binaryFix = "install cloudflared (https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/downloads/) or set CLOUDFLARED_BIN to its path"

// binaryMissing is the one wording of ErrBinaryMissing: what was looked
// for, why it failed, and the fix.
func binaryMissing(bin string, err error) error {
	return fmt.Errorf("%w: %q: %v; %s", ErrBinaryMissing, bin, unwrapExec(err), binaryFix)
}

func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// startLocked runs t's supervisor in its own goroutine with its own context:
// tunnels outlive the config (and request) that created them.
func (m *Manager) startLocked(t *tunnel) {
	t.start()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t.run()
	}()
}

// Release drops owner from every tunnel it owns and stops the tunnels left
// without owners, waiting for their processes to end.
func (m *Manager) Release(owner string) {
	m.mu.Lock()
	var orphans []*tunnel
	for k, t := range m.tunnels {
		if !t.owners[owner] {
			continue
		}
		delete(t.owners, owner)
		if len(t.owners) == 0 {
			delete(m.tunnels, k)
			orphans = append(orphans, t)
		}
	}
	m.mu.Unlock()
	stopAll(orphans)
}

// Stop stops the quick tunnel to target whoever owns it.
func (m *Manager) Stop(target string) (Status, error) {
	spec, err := QuickSpec(target).normalize()
	if err != nil {
		return Status{}, err
	}
	m.mu.Lock()
	t := m.tunnels[spec.key()]
	delete(m.tunnels, spec.key())
	m.mu.Unlock()
	if t == nil {
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, spec.Target)
	}
	t.stop()
	return t.status(), nil
}

// Refresh restarts the quick tunnel to target so that it gets a new URL.
// It asks Cloudflare for a new quick tunnel, so it spends a creation like
// Create (a *SlowDownError when none is left).
func (m *Manager) Refresh(target string) (Status, error) {
	spec, err := QuickSpec(target).normalize()
	if err != nil {
		return Status{}, err
	}
	cfg := m.Config()
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tunnels[spec.key()]
	if t == nil {
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, spec.Target)
	}
	if err := m.takeCreation(cfg); err != nil {
		return t.status(), err
	}
	if t.alive() {
		t.requestRefresh()
		return t.status(), nil
	}
	if err := m.checkBinary(); err != nil {
		t.setFailed(err)
		return t.status(), err
	}
	m.startLocked(t)
	return t.status(), nil
}

// List returns every tunnel's status: the named tunnel first, then quick
// tunnels by target.
func (m *Manager) List() []Status {
	m.mu.Lock()
	ts := make([]*tunnel, 0, len(m.tunnels))
	for _, t := range m.tunnels {
		ts = append(ts, t)
	}
	m.mu.Unlock()
	out := make([]Status, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.status())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type == Named
		}
		return out[i].Target < out[j].Target
	})
	return out
}

// Close stops every tunnel and waits for all processes and goroutines.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	all := make([]*tunnel, 0, len(m.tunnels))
	for _, t := range m.tunnels {
		all = append(all, t)
	}
	m.tunnels = map[string]*tunnel{}
	m.mu.Unlock()
	stopAll(all)
	m.wg.Wait()
	m.logMu.Lock()
	defer m.logMu.Unlock()
	if m.logFile != nil {
		err := m.logFile.Close()
		m.logFile = nil
		return err
	}
	return nil
}

// stopAll stops tunnels in parallel: each may take KillGrace.
func stopAll(ts []*tunnel) {
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.stop()
		}()
	}
	wg.Wait()
}

// waitStartSlot spaces quick tunnel starts StartSpacing apart.
func (m *Manager) waitStartSlot(done <-chan struct{}) bool {
	m.slotMu.Lock()
	now := m.clock.Now()
	slot := m.nextSlot
	if slot.Before(now) {
		slot = now
	}
	m.nextSlot = slot.Add(m.Config().StartSpacing.Std())
	m.slotMu.Unlock()
	if wait := slot.Sub(now); wait > 0 {
		select {
		case <-done:
			return false
		case <-m.clock.After(wait):
		}
	}
	return true
}

// writeLog appends one line to tunnels.log, tagged with the tunnel. Each
// line is one write on an O_APPEND file, so lines of concurrent tunnels
// never interleave mid-line.
func (m *Manager) writeLog(label, line string) {
	dir := m.Config().LogDir
	if dir == "" {
		return
	}
	m.logMu.Lock()
	defer m.logMu.Unlock()
	if m.logFile == nil && m.logErr == nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			m.logErr = err
		} else {
			m.logFile, m.logErr = os.OpenFile(filepath.Join(dir, LogFileName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		}
		if m.logErr != nil {
			m.log.Warn("cannot write tunnels.log; cloudflared output goes to the debug log only", zap.Error(m.logErr))
		}
	}
	if m.logFile == nil {
		return
	}
	ts := m.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	_, _ = m.logFile.WriteString(ts + " [" + label + "] " + line + "\n")
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago, for cloudflared's metrics server. A race lost to another process
// makes cloudflared exit, and the supervisor retries with a new port.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
