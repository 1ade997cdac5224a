// Package supervisordtest runs the real supervisord (Debian package
// supervisor) for tests, with a config of the test's programs and its unix
// socket in a temp dir.
package supervisordtest

import (
	"bytes"
	"context"
	"fmt"
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

// Start runs supervisord with the given [program:x] sections until the
// test ends and returns its socket once it answers. It skips the test under
// -short or when supervisord is not installed. The directory is short
// (os.MkdirTemp, not t.TempDir): a unix socket path must fit in 108 bytes.
func Start(t testing.TB, programs string) (socket string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs supervisord: skipped under -short")
	}
	if _, err := exec.LookPath("supervisord"); err != nil {
		t.Skipf("supervisord is not installed (Debian package supervisor): %v", err)
	}
	dir, err := os.MkdirTemp("", "sv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	conf := fmt.Sprintf(`[unix_http_server]
file=%s
chmod=0700

[supervisord]
nodaemon=true
logfile=%s
pidfile=%s
childlogdir=%s

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
%s`, sock, filepath.Join(dir, "supervisord.log"), filepath.Join(dir, "supervisord.pid"), dir, programs)
	confPath := filepath.Join(dir, "supervisord.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := testproc.Start(t, exec.Command("supervisord", "-n", "-c", confPath),
		testproc.Options{Name: "supervisord", Grace: 15 * time.Second})
	var last error
	up := testwait.Poll(15*time.Second, 50*time.Millisecond, func() bool {
		if proc.Exited() {
			t.Fatalf("supervisord exited: %s", proc.Out.String())
		}
		last = ping(sock)
		return last == nil
	})
	if !up {
		t.Fatalf("supervisord never answered on %s: %v\n%s", sock, last, proc.Out.String())
	}
	return sock
}

// HTTPServer is a [program:name] section: Python's http.server on
// 127.0.0.1:port, an app for the portal to front, started at once and given
// 5 s to stop. python3 is found on PATH (wherever supervisord is installed,
// so is the Python it runs on).
func HTTPServer(name string, port int) string {
	return fmt.Sprintf(`
[program:%s]
command=python3 -m http.server %d --bind 127.0.0.1
startsecs=0
stopwaitsecs=5
`, name, port)
}

// Sleeper is a [program:name] section of a program that only sleeps (a
// worker that must be there, running), started at once.
func Sleeper(name string) string {
	return fmt.Sprintf(`
[program:%s]
command=/bin/sh -c "exec sleep 300"
startsecs=0
`, name)
}

// ping asks supervisord for its state over the socket.
func ping(sock string) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}
	body := `<?xml version="1.0"?><methodCall><methodName>supervisor.getState</methodName><params></params></methodCall>`
	resp, err := client.Post("http://localhost/RPC2", "text/xml", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(b.String(), "RUNNING") {
		return fmt.Errorf("HTTP %s: %s", resp.Status, b.String())
	}
	return nil
}
