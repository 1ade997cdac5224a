package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/supervisor/supervisordtest"
)

// These tests run the real supervisord (Debian package supervisor) with
// small dummy programs, over its unix socket in a temp dir.

// testPrograms: a long-running program, the protected caddy, one that is
// not started automatically, one that always fails at once (FATAL), one
// that exits with status 3 after its start counted (EXITED), and a
// two-process group.
const testPrograms = `
[program:sleeper]
command=/bin/sh -c "exec sleep 300"
startsecs=1
stopwaitsecs=5

[program:caddy]
command=/bin/sh -c "exec sleep 300"
startsecs=0

[program:idle]
command=/bin/sh -c "exec sleep 300"
autostart=false
startsecs=0

[program:crasher]
command=/bin/sh -c "exit 3"
; Far longer than the program lives, even on a loaded machine: always
; "exited too quickly".
startsecs=10
startretries=0
autorestart=false

[program:quitter]
command=/bin/sh -c "exit 3"
startsecs=0
autorestart=false

[program:worker]
command=/bin/sh -c "exec sleep 300"
process_name=worker-%(process_num)d
numprocs=2
startsecs=0

[group:pool]
programs=worker
`

func startSupervisord(t *testing.T, programs string) string {
	return supervisordtest.Start(t, programs)
}

// waitState polls until the program reaches state.
func waitState(t *testing.T, s *Service, name, state string) Process {
	t.Helper()
	var last Process
	ok := testwait.Poll(15*time.Second, 50*time.Millisecond, func() bool {
		p, err := s.Resolve(context.Background(), name)
		last = p
		return err == nil && p.State == state
	})
	if !ok {
		t.Fatalf("%s never reached %s; last %+v", name, state, last)
	}
	return last
}

func newTestService(t *testing.T, cfg Config) *Service {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRealSupervisordList(t *testing.T) {
	sock := startSupervisord(t, testPrograms)
	skip := t.TempDir()
	if err := os.WriteFile(filepath.Join(skip, "idle"), []byte("Idle App\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestService(t, Config{Socket: sock, SkipDir: skip, Unstoppable: []string{"Sleeper"}})
	waitState(t, s, "sleeper", "RUNNING")
	waitState(t, s, "crasher", "FATAL")
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Process{}
	for _, p := range list {
		byID[p.ID] = p
	}
	if len(list) != 7 {
		t.Fatalf("want 7 processes, got %d: %+v", len(list), list)
	}
	sl := byID["sleeper"]
	if sl.Name != "sleeper" || sl.Group != "sleeper" || sl.PID <= 0 || sl.StartedAt == "" || !strings.Contains(sl.Description, "pid") {
		t.Errorf("sleeper = %+v", sl)
	}
	if !sl.Protected || !strings.Contains(sl.ProtectedReason, "PORTAL_UNSTOPPABLE") {
		t.Errorf("sleeper should be protected through unstoppable (case-insensitive): %+v", sl)
	}
	if c := byID["caddy"]; !c.Protected || !strings.Contains(c.ProtectedReason, "serves this portal") {
		t.Errorf("caddy should always be protected: %+v", c)
	}
	idle := byID["idle"]
	if idle.State != "STOPPED" || idle.PID != 0 || idle.UptimeSeconds != 0 || !idle.Skipped || idle.App != "Idle App" || idle.Protected {
		t.Errorf("idle = %+v", idle)
	}
	// supervisord records no exit status for a start that failed.
	cr := byID["crasher"]
	if cr.State != "FATAL" || !strings.Contains(cr.SpawnError, "Exited too quickly") || cr.Skipped {
		t.Errorf("crasher = %+v", cr)
	}
	q := waitState(t, s, "quitter", "EXITED")
	if q.ExitStatus != 3 || q.StoppedAt == "" {
		t.Errorf("quitter = %+v", q)
	}
	w := byID["pool:worker-0"]
	if w.Name != "worker-0" || w.Group != "pool" || w.State != "RUNNING" {
		t.Errorf("pool:worker-0 = %+v", w)
	}
}

func TestRealSupervisordControl(t *testing.T) {
	sock := startSupervisord(t, testPrograms)
	s := newTestService(t, Config{Socket: sock, SkipDir: t.TempDir(), WaitTimeout: confdecl.Duration(10 * time.Second)})
	ctx := context.Background()
	first := waitState(t, s, "sleeper", "RUNNING")

	p, err := s.Stop(ctx, "sleeper")
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	if p.State != "STOPPED" || p.PID != 0 {
		t.Fatalf("after stop: %+v", p)
	}
	// Stopping again is supervisord's NOT_RUNNING fault, passed through.
	_, err = s.Stop(ctx, "sleeper")
	var fault *Fault
	if !errors.As(err, &fault) || fault.Code != FaultNotRunning || !strings.HasPrefix(fault.String, "NOT_RUNNING") {
		t.Fatalf("second stop: want NOT_RUNNING fault, got %v", err)
	}

	p, err = s.Start(ctx, "sleeper")
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	// startsecs=1: start with wait answers only once the program is RUNNING.
	if p.State != "RUNNING" || p.PID <= 0 || p.PID == first.PID {
		t.Fatalf("after start: %+v (first pid %d)", p, first.PID)
	}
	_, err = s.Start(ctx, "sleeper")
	if !errors.As(err, &fault) || fault.Code != FaultAlreadyStarted {
		t.Fatalf("second start: want ALREADY_STARTED fault, got %v", err)
	}

	before := p.PID
	p, err = s.Restart(ctx, "sleeper")
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if p.State != "RUNNING" || p.PID == before {
		t.Fatalf("after restart: %+v (pid before %d)", p, before)
	}

	// Restart of a stopped program just starts it.
	p, err = s.Restart(ctx, "idle")
	if err != nil || p.State != "RUNNING" {
		t.Fatalf("restart idle: %+v, %v", p, err)
	}
	// A group member by its group:name and by its bare name.
	if p, err = s.Stop(ctx, "pool:worker-1"); err != nil || p.State != "STOPPED" {
		t.Fatalf("stop pool:worker-1: %+v, %v", p, err)
	}
	if p, err = s.Start(ctx, "worker-1"); err != nil || p.State != "RUNNING" || p.ID != "pool:worker-1" {
		t.Fatalf("start worker-1: %+v, %v", p, err)
	}
	// A program that dies at once: the start fails with supervisord's
	// fault and the program is described as it was left.
	p, err = s.Start(ctx, "crasher")
	if !errors.As(err, &fault) || fault.Code != FaultSpawnError && fault.Code != FaultAbnormalTermination {
		t.Fatalf("start crasher: want a spawn fault, got %v", err)
	}
	if p.Name != "crasher" || (p.State != "FATAL" && p.State != "BACKOFF") {
		t.Fatalf("crasher after failed start: %+v", p)
	}
}

func TestRealSupervisordRefusals(t *testing.T) {
	sock := startSupervisord(t, testPrograms)
	s := newTestService(t, Config{Socket: sock, SkipDir: t.TempDir(), Unstoppable: []string{"idle"}})
	ctx := context.Background()
	waitState(t, s, "caddy", "RUNNING")
	for _, call := range []struct {
		name string
		do   func(context.Context, string) (Process, error)
	}{{"stop", s.Stop}, {"restart", s.Restart}} {
		for _, prog := range []string{"caddy", "idle"} {
			p, err := call.do(ctx, prog)
			if !errors.Is(err, ErrProtected) {
				t.Errorf("%s %s: want ErrProtected, got %v", call.name, prog, err)
			}
			if p.Name != prog || !p.Protected {
				t.Errorf("%s %s: refusal should describe the program, got %+v", call.name, prog, p)
			}
		}
	}
	// Still running: the refusal touched nothing.
	if p := waitState(t, s, "caddy", "RUNNING"); p.PID == 0 {
		t.Fatalf("caddy: %+v", p)
	}
	// Start is allowed for a protected program.
	if p, err := s.Start(ctx, "idle"); err != nil || p.State != "RUNNING" {
		t.Fatalf("start protected idle: %+v, %v", p, err)
	}
	for _, name := range []string{"nosuch", "pool", "pool:nosuch", "../caddy", ""} {
		_, err := s.Stop(ctx, name)
		if !errors.Is(err, ErrNoSuchProcess) || !strings.Contains(err.Error(), fmt.Sprintf("no such program %q", name)) {
			t.Errorf("stop %q: want no such program, got %v", name, err)
		}
	}
}

func TestRealSupervisordWaitBound(t *testing.T) {
	// A program that ignores SIGTERM for longer than the wait bound. It
	// says when its trap is set: with startsecs=0 supervisord reports
	// RUNNING at once, and a stop sent before the shell ran `trap` would
	// end it at the first SIGTERM.
	trapped := filepath.Join(t.TempDir(), "trapped")
	stubborn := fmt.Sprintf(`
[program:stubborn]
command=/bin/sh -c "trap '' TERM; touch %s; while :; do sleep 0.1; done"
startsecs=0
stopwaitsecs=4
stopasgroup=false
killasgroup=true
`, trapped)
	sock := startSupervisord(t, stubborn)
	s := newTestService(t, Config{Socket: sock, SkipDir: t.TempDir(), WaitTimeout: confdecl.Duration(time.Second)})
	waitState(t, s, "stubborn", "RUNNING")
	testwait.Eventually(t, 10*time.Second, 10*time.Millisecond, "the stubborn program to set its trap", func() bool {
		_, err := os.Stat(trapped)
		return err == nil
	})
	start := time.Now()
	p, err := s.Stop(context.Background(), "stubborn")
	if !errors.Is(err, ErrStillChanging) || !strings.Contains(err.Error(), "stubborn after 1s") {
		t.Fatalf("want ErrStillChanging, got %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("stop took %v, bound is 1s", took)
	}
	if p.State != "STOPPING" {
		t.Fatalf("want STOPPING while supervisord waits, got %+v", p)
	}
}

func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	s := newTestService(t, Config{Socket: filepath.Join(dir, "missing.sock")})
	_, err := s.List(context.Background())
	if !errors.Is(err, ErrNotRunning) || !strings.HasPrefix(err.Error(), "supervisord is not running") {
		t.Fatalf("missing socket: got %v", err)
	}
	// A socket file nobody listens on (supervisord died without removing it).
	stale := filepath.Join(dir, "stale.sock")
	if err := syscallSocketFile(stale); err != nil {
		t.Fatal(err)
	}
	s = newTestService(t, Config{Socket: stale})
	if _, err := s.Stop(context.Background(), "x"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stale socket: got %v", err)
	}
}

// syscallSocketFile leaves a unix socket file with no listener behind.
func syscallSocketFile(path string) error {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	return syscall.Bind(fd, &syscall.SockaddrUnix{Name: path})
}
