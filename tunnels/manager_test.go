package tunnels

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/internal/testwait"
)

// fakeBin is the fake cloudflared, built once by TestMain.
var fakeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fakecloudflared-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeBin = filepath.Join(dir, "cloudflared")
	build := exec.Command("go", "build", "-o", fakeBin, "./internal/fakecloudflared")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the fake cloudflared:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type harness struct {
	t      *testing.T
	m      *Manager
	dir    string
	record string
}

// newHarness runs a Manager on the fake with test-sized knobs. env sets
// the fake's knobs for every child of this test.
func newHarness(t *testing.T, env map[string]string, tweak func(*Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, record: filepath.Join(dir, "record.jsonl")}
	t.Setenv("FAKE_CLOUDFLARED_STATE_DIR", dir)
	t.Setenv("FAKE_CLOUDFLARED_RECORD", h.record)
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg := Config{
		Cloudflared: fakeBin, LogDir: filepath.Join(dir, "log"), StateDir: filepath.Join(dir, "state"),
		ReadyTimeout: ms(5000), UnreadyRestart: ms(300), KillGrace: ms(500),
		PollInterval: ms(20), BackoffBase: ms(20), BackoffMax: ms(100),
		RateLimitCooldown: ms(300), StartSpacing: ms(1), CreateBurst: 100,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.WithDefaults().Check(); err != nil {
		t.Fatal(err)
	}
	h.m = NewManager(cfg, zap.NewNop())
	t.Cleanup(func() { _ = h.m.Close() })
	return h
}

// ms is n milliseconds as a setting.
func ms(n int) confdecl.Duration { return confdecl.Duration(time.Duration(n) * time.Millisecond) }

func (h *harness) find(target string) (Status, bool) {
	for _, s := range h.m.List() {
		if s.Target == target || (target == "" && s.Type == Named) {
			return s, true
		}
	}
	return Status{}, false
}

// waitState polls until the tunnel to target satisfies cond.
func (h *harness) wait(target, what string, cond func(Status) bool) Status {
	h.t.Helper()
	var last Status
	ok := testwait.Poll(10*time.Second, 10*time.Millisecond, func() bool {
		s, found := h.find(target)
		if found {
			last = s
		}
		return found && cond(s)
	})
	if !ok {
		h.t.Fatalf("timed out waiting for %s; last status %+v", what, last)
	}
	return last
}

func (h *harness) waitRunning(target string) Status {
	h.t.Helper()
	return h.wait(target, "running", func(s Status) bool { return s.State == StateRunning && s.URL != "" })
}

func (h *harness) logText() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "log", LogFileName))
	return string(b)
}

type recorded struct {
	Pid        int      `json:"pid"`
	Args       []string `json:"args"`
	TokenInEnv bool     `json:"token_in_env"`
}

func (h *harness) starts() []recorded {
	f, err := os.Open(h.record)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []recorded
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r recorded
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited; it only waits to be reaped.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// waitGone fails the test unless every pid has exited within 2 s.
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for _, p := range pids {
		if !testwait.Poll(time.Until(deadline), 10*time.Millisecond, func() bool { return !alive(p) }) {
			t.Fatalf("pid %d still alive", p)
		}
	}
}

var urlRE = regexp.MustCompile(`^https://[a-z0-9-]+\.trycloudflare\.com$`)

func TestQuickTunnelRunsWithContractFlags(t *testing.T) {
	h := newHarness(t, nil, nil)
	st, created, err := h.m.Create("http://LOCALHOST:18080/")
	if err != nil || !created || st.Target != "http://localhost:18080" {
		t.Fatalf("Create = %+v, %v, %v", st, created, err)
	}
	s := h.waitRunning("http://localhost:18080")
	if !urlRE.MatchString(s.URL) || s.StartedAt == nil || s.Pid == 0 || s.Type != Quick {
		t.Fatalf("status %+v", s)
	}
	args := strings.Join(h.starts()[0].Args, " ")
	for _, want := range []string{"tunnel ", "--no-autoupdate", "--metrics 127.0.0.1:", "--protocol http2", "--url http://localhost:18080"} {
		if !strings.Contains(args, want) {
			t.Errorf("argv %q lacks %q", args, want)
		}
	}
	if strings.Contains(args, "--no-tls-verify") {
		t.Errorf("TLS verification skipped for an http target: %q", args)
	}
	if log := h.logText(); !strings.Contains(log, "[http://localhost:18080]") || !strings.Contains(log, s.URL) {
		t.Errorf("tunnels.log lacks the tagged banner:\n%s", log)
	}
	// A second Create of the same target is the same tunnel.
	again, created, err := h.m.Create("http://localhost:18080")
	if err != nil || created || again.Pid != s.Pid || again.URL != s.URL {
		t.Fatalf("second Create = %+v, %v, %v", again, created, err)
	}
}

func TestHTTPSTargetSkipsTLSVerification(t *testing.T) {
	h := newHarness(t, nil, nil)
	if _, _, err := h.m.Create("https://127.0.0.1:11111"); err != nil {
		t.Fatal(err)
	}
	h.waitRunning("https://127.0.0.1:11111")
	if args := strings.Join(h.starts()[0].Args, " "); !strings.Contains(args, "--no-tls-verify") {
		t.Fatalf("argv %q lacks --no-tls-verify", args)
	}
}

func TestURLFromOutputWhenNoQuicktunnelEndpoint(t *testing.T) {
	h := newHarness(t, map[string]string{"FAKE_CLOUDFLARED_NO_QUICKTUNNEL": "1", "FAKE_CLOUDFLARED_ANSWER_DELAY": "50ms"}, nil)
	if _, _, err := h.m.Create("http://localhost:18081"); err != nil {
		t.Fatal(err)
	}
	s := h.waitRunning("http://localhost:18081")
	if !strings.Contains(h.logText(), s.URL) {
		t.Fatalf("URL %q not the one printed", s.URL)
	}
}

func TestURLPublishedOnlyWhenReady(t *testing.T) {
	h := newHarness(t, map[string]string{"FAKE_CLOUDFLARED_READY_DELAY": "1500ms"}, nil)
	if _, _, err := h.m.Create("http://localhost:18082"); err != nil {
		t.Fatal(err)
	}
	s := h.wait("http://localhost:18082", "process started", func(s Status) bool { return s.Pid != 0 })
	time.Sleep(150 * time.Millisecond) // nothing to wait for: the URL must NOT appear while the fake (a real process) has a hostname but no edge connection
	if s, _ = h.find("http://localhost:18082"); s.State != StateStarting || s.URL != "" {
		t.Fatalf("URL published before /ready: %+v", s)
	}
	h.waitRunning("http://localhost:18082")
}

// restartingWithReason: the reaped process makes the state "restarting"
// first and the supervisor then records why, so a test of the reason waits
// for both.
func restartingWithReason(s Status) bool { return s.State == StateRestarting && s.LastError != "" }

func TestNeverReadyFailsWithLastOutput(t *testing.T) {
	h := newHarness(t, map[string]string{"FAKE_CLOUDFLARED_NEVER_READY": "1"}, func(o *Config) {
		o.ReadyTimeout = ms(300)
		o.BackoffBase, o.BackoffMax = confdecl.Duration(time.Hour), confdecl.Duration(time.Hour)
	})
	if _, _, err := h.m.Create("http://localhost:18083"); err != nil {
		t.Fatal(err)
	}
	s := h.wait("http://localhost:18083", "restarting with a reason", restartingWithReason)
	if !strings.Contains(s.LastError, "no ready tunnel URL within 300ms") || !strings.Contains(s.LastError, "Starting metrics server") {
		t.Fatalf("last_error %q lacks the reason and output", s.LastError)
	}
	if pid := h.starts()[0].Pid; alive(pid) {
		t.Fatalf("timed-out cloudflared %d still alive", pid)
	}
}

func TestFailuresRestartWithBackoff(t *testing.T) {
	h := newHarness(t, map[string]string{"FAKE_CLOUDFLARED_FAIL_TIMES": "3"}, nil)
	if _, _, err := h.m.Create("http://localhost:18084"); err != nil {
		t.Fatal(err)
	}
	s := h.waitRunning("http://localhost:18084")
	if s.Restarts != 3 || !strings.Contains(s.LastError, "no such host") {
		t.Fatalf("status %+v; want 3 restarts and the last failure's output", s)
	}
	if n := len(h.starts()); n != 4 {
		t.Fatalf("%d starts, want 4", n)
	}
	if !strings.Contains(h.logText(), "portal: restarting in") {
		t.Fatal("restart reason not logged to tunnels.log")
	}
}

func TestCrashRestartsWithNewURL(t *testing.T) {
	h := newHarness(t, nil, nil)
	if _, _, err := h.m.Create("http://localhost:18085"); err != nil {
		t.Fatal(err)
	}
	first := h.waitRunning("http://localhost:18085")
	if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ghost *Status // "running" without a process: what a client must never see
	second := h.wait("http://localhost:18085", "restart", func(s Status) bool {
		if s.State == StateRunning && s.Pid == 0 && ghost == nil {
			ghost = &s
		}
		return s.State == StateRunning && s.Pid != first.Pid && s.URL != ""
	})
	if ghost != nil {
		t.Errorf("status said running with no process after the crash: %+v", *ghost)
	}
	if second.URL == first.URL || second.Restarts != 1 || !strings.Contains(second.LastError, "killed by killed") {
		t.Fatalf("after kill -9: %+v (first URL %s)", second, first.URL)
	}
}

func TestUnreadyTunnelIsRestarted(t *testing.T) {
	h := newHarness(t, map[string]string{"FAKE_CLOUDFLARED_UNREADY_AFTER": "300ms"}, nil)
	if _, _, err := h.m.Create("http://localhost:18086"); err != nil {
		t.Fatal(err)
	}
	first := h.waitRunning("http://localhost:18086")
	s := h.wait("http://localhost:18086", "unready restart", func(s Status) bool { return s.Restarts >= 1 })
	if !strings.Contains(s.LastError, "unready for 300ms") || alive(first.Pid) {
		t.Fatalf("status %+v; first pid alive=%v", s, alive(first.Pid))
	}
}

func TestRateLimitCooldownPersists(t *testing.T) {
	h := newHarness(t, map[string]string{"FAKE_CLOUDFLARED_RATE_LIMIT_TIMES": "1"}, func(o *Config) {
		o.RateLimitCooldown = ms(600)
	})
	if _, _, err := h.m.Create("http://localhost:18087"); err != nil {
		t.Fatal(err)
	}
	s := h.wait("http://localhost:18087", "rate_limited", func(s Status) bool { return s.State == StateRateLimited })
	if s.CooldownUntil == nil || !strings.Contains(s.LastError, "rate limited") || !strings.Contains(s.LastError, "429 Too Many Requests") {
		t.Fatalf("status %+v", s)
	}
	// A new manager on the same state directory (a restarted binary)
	// honours the cooldown before starting anything.
	m2 := NewManager(Config{Cloudflared: fakeBin, StateDir: filepath.Join(h.dir, "state"), PollInterval: ms(20), StartSpacing: ms(1)}, nil)
	defer m2.Close()
	if _, _, err := m2.Create("http://localhost:18088"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // nothing to wait for: no start may happen during the cooldown (a real process would appear)
	if l := m2.List(); len(l) != 1 || l[0].State != StateRateLimited || l[0].Pid != 0 {
		t.Fatalf("restarted manager ignored the cooldown: %+v", l)
	}
	// Once the cooldown passes the first tunnel gets its URL.
	h.waitRunning("http://localhost:18087")
}

func TestRefreshGivesNewURL(t *testing.T) {
	h := newHarness(t, nil, nil)
	if _, _, err := h.m.Create("http://localhost:18089"); err != nil {
		t.Fatal(err)
	}
	first := h.waitRunning("http://localhost:18089")
	if _, err := h.m.Refresh("http://localhost:18089"); err != nil {
		t.Fatal(err)
	}
	second := h.wait("http://localhost:18089", "refresh", func(s Status) bool {
		return s.State == StateRunning && s.URL != "" && s.URL != first.URL
	})
	if alive(first.Pid) || second.Restarts != 1 {
		t.Fatalf("refresh: %+v, old pid alive=%v", second, alive(first.Pid))
	}
	if _, err := h.m.Refresh("http://localhost:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refresh of unknown target: %v", err)
	}
}

// helperPid finds the pid the fake printed for its helper process.
func helperPid(log string) int {
	m := regexp.MustCompile(`helper pid (\d+)`).FindStringSubmatch(log)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestStopKillsStubbornProcessGroup(t *testing.T) {
	h := newHarness(t, map[string]string{"FAKE_CLOUDFLARED_IGNORE_TERM": "1", "FAKE_CLOUDFLARED_CHILD": "1"}, nil)
	if _, _, err := h.m.Create("http://localhost:18090"); err != nil {
		t.Fatal(err)
	}
	s := h.waitRunning("http://localhost:18090")
	helper := helperPid(h.logText())
	if helper == 0 || !alive(helper) {
		t.Fatalf("helper not running (pid %d)", helper)
	}
	began := time.Now()
	st, err := h.m.Stop("http://localhost:18090")
	if err != nil || st.State != StateStopped {
		t.Fatalf("Stop = %+v, %v", st, err)
	}
	if took := time.Since(began); took < 400*time.Millisecond {
		t.Errorf("stop took %v: SIGTERM was not given its grace", took)
	}
	// SIGKILL is delivered asynchronously; the group is gone within moments.
	waitGone(t, s.Pid, helper)
	if _, ok := h.find("http://localhost:18090"); ok {
		t.Fatal("stopped tunnel still listed")
	}
	if _, err := h.m.Stop("http://localhost:18090"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second stop: %v", err)
	}
}

func TestNamedTunnelTokenStaysInEnvironment(t *testing.T) {
	const token = "eyJhIjoiZmFrZS1hY2NvdW50IiwidCI6ImZha2UtdHVubmVsIiwicyI6InNlY3JldCJ9"
	h := newHarness(t, map[string]string{
		"FAKE_CLOUDFLARED_EXPECT_TOKEN": token,
		"FAKE_CLOUDFLARED_INGRESS":      "jupyter.example.com=http://localhost:8080,comfy.example.com=http://localhost:8188",
		"CF_TUNNEL_TOKEN":               "parent-secret-not-for-children",
	}, nil)
	st, _, err := h.m.Acquire("config-1", NamedSpec(token))
	if err != nil || st.Type != Named {
		t.Fatalf("Acquire = %+v, %v", st, err)
	}
	s := h.waitRunning("")
	if s.URL != "https://jupyter.example.com" || len(s.Ingress) != 2 || s.Ingress[1].Service != "http://localhost:8188" {
		t.Fatalf("named status %+v", s)
	}
	rec := h.starts()[0]
	if !rec.TokenInEnv || strings.Contains(strings.Join(rec.Args, " "), token) || rec.Args[len(rec.Args)-1] != "run" {
		t.Fatalf("recorded start %+v", rec)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.Pid))
	environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", s.Pid))
	if strings.Contains(string(cmdline), token) || strings.Contains(string(environ), "parent-secret") {
		t.Fatalf("token leaked into argv or CF_TUNNEL_TOKEN passed on")
	}
	blob, _ := json.Marshal(h.m.List())
	if strings.Contains(h.logText(), token) || strings.Contains(string(blob), token) {
		t.Fatal("token in tunnels.log or status")
	}
	// A quick tunnel's child gets no token at all.
	if _, _, err := h.m.Create("http://localhost:18091"); err != nil {
		t.Fatal(err)
	}
	q := h.waitRunning("http://localhost:18091")
	environ, _ = os.ReadFile(fmt.Sprintf("/proc/%d/environ", q.Pid))
	if strings.Contains(string(environ), "TUNNEL_TOKEN") {
		t.Fatal("quick tunnel child got a token")
	}
}

func TestWrongTokenFailsWithReason(t *testing.T) {
	h := newHarness(t, map[string]string{"FAKE_CLOUDFLARED_EXPECT_TOKEN": "right"}, nil)
	if _, _, err := h.m.Acquire("c", NamedSpec("wrong-token-value")); err != nil {
		t.Fatal(err)
	}
	s := h.wait("", "restarting with a reason", restartingWithReason)
	if !strings.Contains(s.LastError, "Provided Tunnel token is not valid") || strings.Contains(s.LastError, "wrong-token-value") {
		t.Fatalf("last_error %q", s.LastError)
	}
}

func TestMissingBinaryFailsClearly(t *testing.T) {
	h := newHarness(t, nil, func(o *Config) { o.Cloudflared = filepath.Join(t.TempDir(), "no-cloudflared") })
	st, _, err := h.m.Create("http://localhost:18092")
	if !errors.Is(err, ErrBinaryMissing) || st.State != StateFailed || !strings.Contains(st.LastError, "no-cloudflared") {
		t.Fatalf("Create = %+v, %v", st, err)
	}
	if _, _, err := h.m.Create("http://example.com:80"); !errors.Is(err, ErrInvalidTarget) {
		t.Fatalf("bad target: %v", err)
	}
}

func TestOwnersKeepTunnelAcrossHandover(t *testing.T) {
	h := newHarness(t, nil, nil)
	spec := QuickSpec("http://localhost:18093")
	if _, _, err := h.m.Acquire("old-config", spec); err != nil {
		t.Fatal(err)
	}
	first := h.waitRunning("http://localhost:18093")
	// A reload: the new config takes the tunnel before the old one lets go.
	if _, created, err := h.m.Acquire("new-config", spec); err != nil || created {
		t.Fatalf("re-Acquire: created=%v err=%v", created, err)
	}
	h.m.Release("old-config")
	if s, ok := h.find("http://localhost:18093"); !ok || s.Pid != first.Pid || s.URL != first.URL {
		t.Fatalf("handover changed the tunnel: %+v", s)
	}
	h.m.Release("new-config")
	if _, ok := h.find("http://localhost:18093"); ok || alive(first.Pid) {
		t.Fatal("tunnel without owners still running")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	h := newHarness(t, nil, nil)
	var pids []int
	for _, target := range []string{"http://localhost:18094", "http://localhost:18095"} {
		if _, _, err := h.m.Create(target); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, h.waitRunning(target).Pid)
	}
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if alive(p) {
			t.Fatalf("pid %d survived Close", p)
		}
	}
	if _, _, err := h.m.Create("http://localhost:18096"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Create after Close: %v", err)
	}
}
