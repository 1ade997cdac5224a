// Package integration_test runs the real binary (built once from ./cmd/caddy)
// with `caddy run --adapter portal_yaml`, against real backends on 127.0.0.1.
// Every test is skipped under -short.
package integration_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testproc"
	"github.com/instanceportal/portal/internal/testwait"
)

// caddyBin is the binary under test, built by TestMain.
var caddyBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if !isShort() {
		dir, err := os.MkdirTemp("", "portal-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		caddyBin = filepath.Join(dir, "caddy")
		if env := os.Getenv("PORTAL_TEST_BINARY"); env != "" {
			caddyBin = env // a binary built beforehand (e.g. by xcaddy)
		} else {
			// Go's internal linker, as the Makefile and the image use
			// (GO_LDFLAGS there explains why).
			build := exec.Command("go", "build", "-ldflags=-linkmode=internal", "-o", caddyBin, "../cmd/caddy")
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			// go-nvml's headers mark NVML calls deprecated: ~150 lines of gcc
			// warnings that look like a failure. Silenced for this build only.
			build.Env = append(os.Environ(), "CGO_CFLAGS=-Wno-deprecated-declarations")
			if err := build.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "building caddy:", err)
				return 1
			}
		}
	}
	return m.Run()
}

func isShort() bool {
	for _, a := range os.Args {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped under -short")
	}
}

// freePort returns a TCP port that caddy can bind a moment later (see
// testwait.FreePort for how it is chosen).
func freePort(t testing.TB) int {
	t.Helper()
	return testwait.FreePort(t)
}

// mustMkdir creates directory p and its parents.
func mustMkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// mustWrite writes body to file p with mode.
func mustWrite(t testing.TB, p, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// Portal is one running `caddy run --adapter portal_yaml` process.
type Portal struct {
	t          testing.TB
	Dir        string // temp dir: config, logs (Dir/log), state (Dir/state)
	ConfigPath string
	AdminAddr  string // 127.0.0.1:port
	Env        []string
	proc       *testproc.Proc
}

// PortalOptions tunes StartPortal. Env entries override the defaults that
// point every path into the test's temp dir.
type PortalOptions struct {
	Env map[string]string
	// Args are extra arguments after `run --adapter portal_yaml --config X`.
	Args []string
	// NoWait skips waiting for the admin endpoint (for start-up failures).
	NoWait bool
}

// StartPortal writes yaml to a temp portal.yaml and runs the binary on it.
// The process is stopped when the test ends.
func StartPortal(t testing.TB, yaml string, opts PortalOptions) *Portal {
	t.Helper()
	skipShort(t)
	dir := t.TempDir()
	p := &Portal{t: t, Dir: dir, ConfigPath: filepath.Join(dir, "portal.yaml")}
	mustWrite(t, p.ConfigPath, yaml, 0o644)
	for _, d := range []string{"log", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.AdminAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := map[string]string{
		"HOME":                   dir,
		"PATH":                   os.Getenv("PATH"),
		"PORTAL_LOG_DIR":         filepath.Join(dir, "log"),
		"PORTAL_STATE_DIR":       filepath.Join(dir, "state"),
		"PORTAL_ADMIN_LISTEN":    p.AdminAddr,
		"INSTANCE_CERT":          filepath.Join(dir, "instance.crt"),
		"INSTANCE_KEY":           filepath.Join(dir, "instance.key"),
		"SUPERVISOR_SOCKET":      filepath.Join(dir, "supervisor.sock"),
		"PORTAL_DEFAULT_TUNNELS": "false",
		"XDG_DATA_HOME":          filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME":        filepath.Join(dir, "config"),
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	for k, v := range env {
		p.Env = append(p.Env, k+"="+v)
	}
	args := append([]string{"run", "--adapter", "portal_yaml", "--config", p.ConfigPath}, opts.Args...)
	cmd := exec.Command(caddyBin, args...)
	cmd.Env = p.Env
	cmd.Dir = dir
	// SIGINT is Caddy's graceful stop.
	p.proc = testproc.Start(t, cmd, testproc.Options{Name: "caddy", Stop: os.Interrupt})
	if !opts.NoWait {
		p.WaitAdmin()
	}
	return p
}

// WaitAdmin blocks until the admin endpoint answers, failing the test if the
// process exits or 20 s pass.
func (p *Portal) WaitAdmin() {
	p.t.Helper()
	up := testwait.Poll(20*time.Second, 0, func() bool {
		select {
		case <-p.proc.Done():
			p.t.Fatalf("caddy exited during start-up:\n%s", p.Logs())
		default:
		}
		resp, err := http.Get("http://" + p.AdminAddr + "/config/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if !up {
		p.t.Fatalf("admin endpoint %s never answered:\n%s", p.AdminAddr, p.Logs())
	}
}

// Exited reports whether the process has ended.
func (p *Portal) Exited() bool { return p.proc.Exited() }

// WaitExit waits up to d for the process to end.
func (p *Portal) WaitExit(d time.Duration) bool { return p.proc.Wait(d) }

// Logs returns everything the process printed so far.
func (p *Portal) Logs() string { return p.proc.Out.String() }

// Pid is the caddy process id.
func (p *Portal) Pid() int { return p.proc.Cmd.Process.Pid }

// Stop sends SIGINT (Caddy's graceful stop) and then SIGKILL after 10 s.
func (p *Portal) Stop() { p.proc.Stop() }

// Caddy runs another subcommand of the binary with the portal's environment
// (e.g. `reload`), returning combined output and the exit error.
func (p *Portal) Caddy(args ...string) (string, error) {
	p.t.Helper()
	return p.CaddyEnv(nil, args...)
}

// CaddyEnv is Caddy with env added to the portal's environment.
func (p *Portal) CaddyEnv(env []string, args ...string) (string, error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, args...)
	cmd.Env = append(append([]string{}, p.Env...), env...)
	cmd.Dir = p.Dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Reload runs `caddy reload` of the portal's config (with extra arguments
// such as --force). The old servers close their idle keep-alive
// connections; Go's client does not retry a POST on such a connection (a
// browser does), so the shared transport's idle connections go too.
func (p *Portal) Reload(extra ...string) (string, error) {
	p.t.Helper()
	out, err := p.Caddy(append([]string{"reload", "--adapter", "portal_yaml", "--config", p.ConfigPath, "--address", p.AdminAddr}, extra...)...)
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	return out, err
}

// Load replaces the running config with a JSON one through the admin API's
// /load, and drops the shared transport's idle connections as Reload does
// (a GET on one the old server closed failed with EOF under load).
func (p *Portal) Load(config []byte) {
	p.t.Helper()
	admin := &apiClient{t: p.t, base: "http://" + p.AdminAddr}
	if code, msg := admin.call(http.MethodPost, "/load", string(config), map[string]string{"Content-Type": "application/json"}); code != 200 {
		p.t.Fatalf("/load: %d %s", code, msg)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// AdminConfig returns the running config as served by the admin API.
func (p *Portal) AdminConfig() string {
	p.t.Helper()
	resp, err := http.Get("http://" + p.AdminAddr + "/config/")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitFor polls cond every 20 ms until it is true or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, d, 0, what, cond)
}

// waitStatus polls url until it answers with status want.
func waitStatus(t testing.TB, client *http.Client, url string, want int) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	last := "no answer"
	ok := testwait.Poll(15*time.Second, 0, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			last = err.Error()
			return false
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == want
	})
	if ok {
		return
	}
	t.Fatalf("timed out after 15s waiting for %s → %d; last answer: %s", url, want, last)
}

// backend is a real HTTP server on 127.0.0.1 standing in for an app.
type backend struct {
	Port int
	srv  *http.Server
}

// startBackend serves h on a free 127.0.0.1 port until the test ends.
func startBackend(t testing.TB, h http.Handler) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{Port: l.Addr().(*net.TCPAddr).Port, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	go func() { _ = b.srv.Serve(l) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

// appYAML renders one portal.yaml entry.
func appYAML(name string, external, internal int, openPath string) string {
	return fmt.Sprintf("  %s:\n    hostname: localhost\n    external_port: %d\n    internal_port: %d\n    open_path: %s\n    name: %s\n",
		yamlKey(name), external, internal, openPath, name)
}

func yamlKey(name string) string {
	if strings.ContainsAny(name, " :") {
		return fmt.Sprintf("%q", name)
	}
	return name
}

// portalYAML joins app entries under `applications:`.
func portalYAML(entries ...string) string {
	return "applications:\n" + strings.Join(entries, "")
}
