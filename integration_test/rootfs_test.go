package integration_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRootfsBoot runs the image's real start-up inside a temp dir:
// rootfs/opt/instance-tools/bin/entrypoint.sh with PORTAL_ROOT pointing at a
// directory whose opt/supervisor-scripts and etc/supervisor are the
// repository's own files, real supervisord, the binary under test as caddy,
// and rootfs/usr/local/bin (log-tee) on PATH. Started with PORTAL_CONFIG and
// no portal.yaml, it must write the files, run the provisioning script under
// the lock, start caddy (and Jupyter when installed) through supervisord,
// leave an unconfigured app stopped, and on SIGTERM stop every process.
func TestRootfsBoot(t *testing.T) {
	skipShort(t)
	for _, bin := range []string{"supervisord", "supervisorctl", "openssl", "setsid"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (Debian packages supervisor, openssl, util-linux): %v", bin, err)
		}
	}
	rootfs, err := filepath.Abs("../rootfs")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	at := func(p string) string { return filepath.Join(root, p) }
	for _, d := range []string{"opt/workspace-internal/examples", "etc", "workspace"} {
		mustMkdir(t, at(d))
	}
	for _, l := range []string{"opt/supervisor-scripts", "etc/supervisor"} {
		if err := os.Symlink(filepath.Join(rootfs, l), at(l)); err != nil {
			t.Fatal(err)
		}
	}
	// The workspace template: two new items, and one the workspace already
	// has, which must not be overwritten.
	mustWrite(t, at("opt/workspace-internal/examples/hello.ipynb"), "{}", 0o644)
	mustWrite(t, at("opt/workspace-internal/.hidden"), "template", 0o644)
	mustWrite(t, at("opt/workspace-internal/notes.txt"), "template", 0o644)
	mustWrite(t, at("workspace/notes.txt"), "mine", 0o644)

	// The provisioning script records whether the lock was there while it ran.
	// It is served as a URL, with Windows line endings the entrypoint must
	// remove (a "#!/bin/bash\r" line would not run), when curl is installed;
	// otherwise it is given as a local path.
	provisioned := filepath.Join(dir, "provisioned")
	script := fmt.Sprintf(`#!/bin/bash
if [[ -f $PROVISIONING_LOCK ]]; then lock=present; else lock=absent; fi
echo "provisioning step one"
echo "lock=$lock" > %q
`, provisioned)
	provisioning := filepath.Join(dir, "provision.sh")
	mustWrite(t, provisioning, script, 0o755)
	_, curlErr := exec.LookPath("curl")
	if curlErr == nil {
		crlf := strings.ReplaceAll(script, "\n", "\r\n")
		srv := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, crlf)
		}))
		provisioning = fmt.Sprintf("http://127.0.0.1:%d/provision.sh", srv.Port)
	}

	portalExt, portalInt := freePort(t), freePort(t)
	jupyterExt, jupyterInt := freePort(t), freePort(t)
	_, jupyterErr := exec.LookPath("jupyter")
	haveJupyter := jupyterErr == nil
	// A value a naive writer of /etc/environment would let run as code.
	const tricky = `it's "$(touch pwned)" $HOME`
	// Every process started from here carries the mark in its environment,
	// which is how the leak check below finds them.
	mark := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	// The scripts call `caddy` from PATH: a directory holding only it, first.
	bin := filepath.Join(dir, "bin")
	mustMkdir(t, bin)
	if err := os.Symlink(caddyBin, filepath.Join(bin, "caddy")); err != nil {
		t.Fatal(err)
	}
	path := bin + ":" + filepath.Join(rootfs, "usr/local/bin") + ":" + os.Getenv("PATH")
	env := []string{
		"PATH=" + path,
		"HOME=" + dir,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"PORTAL_ROOT=" + root,
		"PORTAL_CONFIG=" + fmt.Sprintf("localhost:%d:%d:/:Instance Portal|localhost:%d:%d:/:Jupyter",
			portalExt, portalInt, jupyterExt, jupyterInt),
		"JUPYTER_PORT=" + strconv.Itoa(jupyterInt),
		"ENABLE_AUTH=false",
		"PORTAL_ADMIN_LISTEN=127.0.0.1:" + strconv.Itoa(freePort(t)),
		"PORTAL_DEFAULT_TUNNELS=false",
		"PUBLIC_IPADDR=192.0.2.10", // only written into the certificate
		"PORTAL_RESTART_DELAY=1",
		"PROVISIONING_SCRIPT=" + provisioning,
		"TRICKY_VALUE=" + tricky,
		"ROOTFS_TEST_MARK=" + mark,
	}
	// Keep the socket path short enough for a unix socket (108 bytes).
	if len(at("var/run/supervisor.sock")) > 100 {
		env = append(env, "SUPERVISOR_SOCKET="+filepath.Join(dir, "s.sock"))
	}
	sock := at("var/run/supervisor.sock")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SUPERVISOR_SOCKET="); ok {
			sock = v
		}
	}

	out := &syncBuffer{}
	cmd := exec.Command(filepath.Join(rootfs, "opt/instance-tools/bin/entrypoint.sh"))
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("entrypoint output:\n%s", out.String())
		}
		if !exited {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		}
		killMarked(mark) // whatever a failed test left behind
	})
	fail := t.Fatalf // the cleanup above prints the entrypoint's output

	// The portal, started by supervisord, answers on its internal port.
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)

	// portal.yaml from PORTAL_CONFIG.
	yaml, err := os.ReadFile(at("etc/portal.yaml"))
	if err != nil || !bytes.Contains(yaml, []byte("Instance Portal")) || !bytes.Contains(yaml, []byte("Jupyter")) {
		fail("portal.yaml not written from PORTAL_CONFIG (%v):\n%s", err, yaml)
	}

	// The instance pair: a parsable certificate naming localhost, key 0600.
	checkMode(t, at("etc/instance.key"), 0o600)
	certPEM, err := os.ReadFile(at("etc/instance.crt"))
	if err != nil {
		fail("no certificate: %v", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		fail("instance.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		fail("instance.crt: %v", err)
	}
	if cert.IsCA || cert.VerifyHostname("localhost") != nil || cert.VerifyHostname("127.0.0.1") != nil ||
		cert.VerifyHostname("192.0.2.10") != nil {
		fail("certificate: IsCA=%v DNS=%v IPs=%v", cert.IsCA, cert.DNSNames, cert.IPAddresses)
	}

	// The environment file: 0600, and sourcing it gives back every value
	// exactly, without running anything.
	checkMode(t, at("etc/environment"), 0o600)
	src := exec.Command("bash", "-c", `set -a; . "$1"; printf '%s\n%s' "$TRICKY_VALUE" "$ROOTFS_TEST_MARK"`, "_", at("etc/environment"))
	src.Dir, src.Env = dir, []string{"PATH=" + os.Getenv("PATH")}
	got, err := src.Output()
	if err != nil || string(got) != tricky+"\n"+mark {
		fail("sourcing etc/environment gave %q (%v), want %q", got, err, tricky+"\n"+mark)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		fail("sourcing etc/environment ran a command substitution")
	}

	// The workspace: template items copied, the user's file kept.
	for p, want := range map[string]string{
		"workspace/examples/hello.ipynb": "{}",
		"workspace/.hidden":              "template",
		"workspace/notes.txt":            "mine",
	} {
		if b, err := os.ReadFile(at(p)); err != nil || string(b) != want {
			fail("%s = %q (%v), want %q", p, b, err, want)
		}
	}

	// Provisioning ran while the lock existed; afterwards the lock is gone and
	// the completion marker is there.
	waitFor(t, 15*time.Second, "provisioning to finish", func() bool {
		_, err := os.Stat(at(".provisioning_complete"))
		return err == nil
	})
	if b, err := os.ReadFile(provisioned); err != nil || strings.TrimSpace(string(b)) != "lock=present" {
		fail("provisioning script saw %q (%v), want lock=present", b, err)
	}
	if curlErr == nil {
		if b, err := os.ReadFile(at("provisioning.sh")); err != nil || string(b) != script {
			fail("downloaded provisioning.sh = %q (%v), want the script without \\r", b, err)
		}
	}
	waitFor(t, 5*time.Second, "the lock to be removed", func() bool {
		_, err := os.Stat(at(".provisioning"))
		return os.IsNotExist(err)
	})
	waitFor(t, 5*time.Second, "provisioning.log", func() bool {
		b, _ := os.ReadFile(at("var/log/portal/provisioning.log"))
		return bytes.Contains(b, []byte("provisioning step one")) && bytes.Contains(b, []byte("Provisioning complete"))
	})

	// supervisord: caddy runs, TensorBoard (not in PORTAL_CONFIG) exited
	// quietly and stays stopped, Jupyter runs when installed.
	status := func() string {
		b, _ := exec.Command("supervisorctl", "-s", "unix://"+sock, "status").CombinedOutput()
		return string(b)
	}
	wantStates := map[string]string{"caddy": "RUNNING", "tensorboard": "EXITED", "jupyter": "EXITED"}
	if haveJupyter {
		wantStates["jupyter"] = "RUNNING"
	}
	waitFor(t, 15*time.Second, "supervisord states "+fmt.Sprint(wantStates), func() bool {
		return programStates(status()) == fmt.Sprint(wantStates)
	})
	if b, _ := os.ReadFile(at("var/log/portal/tensorboard.log")); !bytes.Contains(b, []byte("not starting")) {
		fail("tensorboard.log does not say why it did not start: %q", b)
	}
	time.Sleep(1500 * time.Millisecond) // a restart loop would show by now
	if st := programStates(status()); st != fmt.Sprint(wantStates) {
		fail("states changed to %s", st)
	}
	if b, _ := os.ReadFile(at("var/log/portal/caddy.log")); !bytes.Contains(b, []byte("Starting Caddy")) {
		fail("caddy.log lacks the start line: %q", b)
	}

	// Jupyter, through the portal's proxy on its external port.
	if haveJupyter {
		waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/api", jupyterExt), 200)
	} else {
		t.Log("jupyter not installed: only its 'not installed' exit was checked")
	}

	// caddy is supervisord's child, and the mark finds the whole tree.
	procs := markedProcs(mark)
	caddyPid := 0
	for pid, args := range procs {
		if strings.HasPrefix(args, "caddy run --adapter portal_yaml") {
			caddyPid = pid
		}
	}
	if caddyPid == 0 {
		fail("no marked caddy process among %v", procs)
	}
	if ppid := parentPid(caddyPid); !strings.Contains(procs[ppid], "supervisord") {
		fail("caddy's parent is %d %q, want supervisord", ppid, procs[ppid])
	}

	// Removing portal.yaml and restarting caddy rewrites it from PORTAL_CONFIG.
	if err := os.Remove(at("etc/portal.yaml")); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("supervisorctl", "-s", "unix://"+sock, "restart", "caddy").CombinedOutput(); err != nil {
		fail("supervisorctl restart caddy: %v\n%s", err, b)
	}
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	if _, err := os.Stat(at("etc/portal.yaml")); err != nil {
		fail("portal.yaml not rewritten by caddy.sh: %v", err)
	}

	// SIGTERM, as `docker stop` sends to PID 1: everything stops.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		exited = true
		if err != nil {
			fail("entrypoint exited with %v after SIGTERM", err)
		}
	case <-time.After(25 * time.Second):
		fail("entrypoint still running 25 s after SIGTERM")
	}
	// Orphans (the log-tee of a program) may outlive it by a moment.
	left := markedProcs(mark)
	for deadline := time.Now().Add(5 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = markedProcs(mark) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		fail("processes left after the stop: %v", left)
	}
	if !strings.Contains(out.String(), "supervisord exited (status 0)") {
		fail("no clean supervisord exit in the output")
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func checkMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %o, want %o", p, got, want)
	}
}

// programStates reduces `supervisorctl status` to "map[name:STATE ...]".
func programStates(status string) string {
	m := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			m[f[0]] = f[1]
		}
	}
	return fmt.Sprint(m)
}

// markedProcs lists the live processes (pid → command line) whose
// environment holds ROOTFS_TEST_MARK=mark. Zombies are not counted: their
// environment is gone.
func markedProcs(mark string) map[int]string {
	want := []byte("ROOTFS_TEST_MARK=" + mark + "\x00")
	found := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		found[pid] = strings.TrimSpace(strings.ReplaceAll(string(args), "\x00", " "))
	}
	return found
}

func killMarked(mark string) {
	for pid := range markedProcs(mark) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// parentPid reads the PPid line of /proc/PID/status.
func parentPid(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
