package integration_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testproc"
	"github.com/instanceportal/portal/internal/testwait"
)

// A boot test runs the image's real start-up inside a temp dir: the
// repository's rootfs/opt/instance-tools/bin/entrypoint.sh with PORTAL_ROOT
// pointing at a directory whose opt/supervisor-scripts and etc/supervisor
// hold the repository's files, real supervisord, the binary under test as
// caddy, and rootfs/usr/local/bin (log-tee) on PATH. As root, it runs in a
// private mount namespace where /opt is the temp root's opt, so that
// template-style scripts source /opt/supervisor-scripts/utils by its
// absolute path, unchanged.

// bootRoot is one temporary root, booted one or more times.
type bootRoot struct {
	t       *testing.T
	dir     string // the test's temp dir (scripts, markers outside the root)
	root    string // PORTAL_ROOT
	rootfs  string // the repository's rootfs/
	env     []string
	mark    string // in every process's environment: finds leftovers
	sock    string
	nsMount bool // template-style programs installed, /opt bind-mounted
}

// templateConf is a supervisor program the way a template declares one.
const templateConf = `[program:%s]
environment=PROC_NAME="%%(program_name)s"
command=/opt/supervisor-scripts/%s.sh
autostart=true
autorestart=true
exitcodes=0
startsecs=0
stopasgroup=true
killasgroup=true
stopsignal=TERM
stopwaitsecs=10
stdout_logfile=/dev/stdout
redirect_stderr=true
stdout_logfile_maxbytes=0
stdout_logfile_backups=0
`

// templateWrapper is a wrapper script written the way templates write
// them (sourcing the four utils, exit_portal.sh with the app's name, cd
// ${WORKSPACE}), then body.
func templateWrapper(app, body string) string {
	return `#!/bin/bash
utils=/opt/supervisor-scripts/utils
. "${utils}/logging.sh"
. "${utils}/cleanup_generic.sh"
. "${utils}/environment.sh"
. "${utils}/exit_portal.sh" "` + app + `"

` + body
}

// templateApp serves on port 127.0.0.1:port after a progress bar;
// templateSkipped is not configured and must not get past exit_portal.sh.
func templateApp(port int) string {
	return templateWrapper("Template App", `echo "Starting Template App with EDITED=${EDITED_VAR:-unset}"
cd "${WORKSPACE}"
pty bash -c 'for i in 1 2 3; do printf "\rprogress %d%%" $((i * 33)); sleep 0.1; done; printf "\n"; exec python3 -m http.server `+strconv.Itoa(port)+` --bind 127.0.0.1'
`)
}

var templateSkipped = templateWrapper("Not Configured App", `echo "must not get here"
cd "${WORKSPACE}"
pty sleep 1000
`)

func requireBootTools(t *testing.T) {
	skipShort(t)
	for _, bin := range []string{"supervisord", "supervisorctl", "setsid", "curl", "python3", "script"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (Debian packages supervisor, util-linux, curl, python3): %v", bin, err)
		}
	}
}

// canMountNamespace: root, and unshare can make a private mount namespace.
func canMountNamespace() bool {
	if os.Geteuid() != 0 {
		return false
	}
	return exec.Command("unshare", "--mount", "--propagation", "private", "true").Run() == nil
}

func newBootRoot(t *testing.T, withTemplates bool) *bootRoot {
	rootfs, err := filepath.Abs("../rootfs")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := &bootRoot{t: t, dir: dir, root: filepath.Join(dir, "root"), rootfs: rootfs,
		mark: fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())}
	b.nsMount = withTemplates && canMountNamespace()
	if withTemplates && !b.nsMount {
		t.Log("not root (or no unshare): the template-style scripts, which need /opt/supervisor-scripts in a private mount namespace, are not run")
	}
	for _, d := range []string{"opt/workspace-internal", "opt/supervisor-scripts", "etc/supervisor/conf.d", "workspace"} {
		mustMkdir(t, b.at(d))
	}
	// The repository's scripts and programs, linked; supervisord.conf copied
	// so that its relative include finds this conf.d.
	scripts, _ := filepath.Glob(filepath.Join(rootfs, "opt/supervisor-scripts/*"))
	for _, s := range scripts {
		mustSymlink(t, s, b.at("opt/supervisor-scripts", filepath.Base(s)))
	}
	confs, _ := filepath.Glob(filepath.Join(rootfs, "etc/supervisor/conf.d/*.conf"))
	for _, c := range confs {
		mustSymlink(t, c, b.at("etc/supervisor/conf.d", filepath.Base(c)))
	}
	conf, err := os.ReadFile(filepath.Join(rootfs, "etc/supervisor/supervisord.conf"))
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, b.at("etc/supervisor/supervisord.conf"), string(conf), 0o644)

	// The scripts call `caddy` from PATH: a directory holding only it, first.
	bin := filepath.Join(dir, "bin")
	mustMkdir(t, bin)
	mustSymlink(t, caddyBin, filepath.Join(bin, "caddy"))
	b.env = []string{
		"PATH=" + bin + ":" + filepath.Join(rootfs, "usr/local/bin") + ":" + os.Getenv("PATH"),
		"HOME=" + dir,
		"PORTAL_ROOT=" + b.root,
		"PORTAL_DEFAULT_TUNNELS=false",
		"PORTAL_RESTART_DELAY=1",
		"PORTAL_SKIP_SLEEP=1",
		"PORTAL_SKIP_DIR=" + filepath.Join(dir, "skip"),
		"ROOTFS_TEST_MARK=" + b.mark,
		"PORTAL_ADMIN_LISTEN=127.0.0.1:" + strconv.Itoa(freePort(t)),
		"INSTANCE_CERT_SIGNER_URL=off",
	}
	// Keep the socket path short enough for a unix socket (108 bytes).
	b.sock = b.at("var/run/supervisor.sock")
	if len(b.sock) > 100 {
		b.sock = filepath.Join(dir, "s.sock")
		b.env = append(b.env, "SUPERVISOR_SOCKET="+b.sock)
	}
	t.Cleanup(func() { killMarked(b.mark) }) // whatever a failed test left behind
	return b
}

func (b *bootRoot) at(p ...string) string { return filepath.Join(append([]string{b.root}, p...)...) }

// setEnv replaces or adds variables of every later boot.
func (b *bootRoot) setEnv(kv ...string) {
	for _, e := range kv {
		name, _, _ := strings.Cut(e, "=")
		kept := b.env[:0]
		for _, old := range b.env {
			if !strings.HasPrefix(old, name+"=") {
				kept = append(kept, old)
			}
		}
		b.env = append(kept, e)
	}
}

// addTemplateProgram installs a template-style program (script + conf).
func (b *bootRoot) addTemplateProgram(name, script string) {
	mustWrite(b.t, b.at("opt/supervisor-scripts", name+".sh"), script, 0o755)
	mustWrite(b.t, b.at("etc/supervisor/conf.d", name+".conf"), fmt.Sprintf(templateConf, name, name), 0o644)
}

// boot is one run of the entrypoint.
type boot struct {
	b    *bootRoot
	proc *testproc.Proc
	out  *testproc.Buffer
}

func (b *bootRoot) start() *boot {
	t := b.t
	entry := filepath.Join(b.rootfs, "opt/instance-tools/bin/entrypoint.sh")
	cmd := exec.Command(entry)
	if b.nsMount {
		cmd = exec.Command("unshare", "--mount", "--propagation", "private", "--",
			"bash", "-c", `mount --bind "$1" /opt && exec "$2"`, "boot", b.at("opt"), entry)
	}
	cmd.Env, cmd.Dir = b.env, b.dir
	proc := testproc.Start(t, cmd, testproc.Options{Name: "entrypoint", Grace: 20 * time.Second})
	return &boot{b: b, proc: proc, out: proc.Out}
}

// waitCaddy waits for supervisord to start caddy: the boot before it
// (certificate, hooks) is slow on a loaded machine, past waitStatus's 15 s.
func (bt *boot) waitCaddy() {
	waitFor(bt.b.t, 90*time.Second, "supervisord to start caddy", func() bool { return strings.Contains(bt.out.String(), "Starting Caddy") })
}

// stop sends SIGTERM, as `docker stop` does to PID 1: the entrypoint must
// exit 0 with supervisord, and no process of the boot may be left.
func (bt *boot) stop() {
	t := bt.b.t
	t.Helper()
	if err := bt.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !bt.proc.Wait(25 * time.Second) {
		t.Fatalf("entrypoint still running 25 s after SIGTERM")
	}
	if err := bt.proc.Err(); err != nil {
		t.Fatalf("entrypoint exited with %v after SIGTERM", err)
	}
	// Orphans (the log-tee of a program) may outlive it by a moment.
	var left map[int]string
	if !testwait.Poll(5*time.Second, 50*time.Millisecond, func() bool {
		left = markedProcs(bt.b.mark)
		return len(left) == 0
	}) {
		t.Fatalf("processes left after the stop: %v", left)
	}
	if !strings.Contains(bt.out.String(), "supervisord exited (status 0)") {
		t.Fatalf("no clean supervisord exit in the output")
	}
}

func (b *bootRoot) ctl(args ...string) (string, error) {
	out, err := exec.Command("supervisorctl", append([]string{"-s", "unix://" + b.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// waitStates waits until the named programs are in the given states.
func (b *bootRoot) waitStates(want map[string]string) {
	b.t.Helper()
	var last string
	if !testwait.Poll(20*time.Second, 50*time.Millisecond, func() bool {
		st, _ := b.ctl("status")
		last = programStates(st)
		for name, state := range want {
			if !strings.Contains(last, name+":"+state) {
				return false
			}
		}
		return true
	}) {
		b.t.Fatalf("timed out waiting for supervisord states %v; last: %s", want, last)
	}
}

func (b *bootRoot) read(p string) string {
	data, _ := os.ReadFile(b.at(p))
	return string(data)
}

// testSigner is a certificate signer on 127.0.0.1 standing in for the
// console: while down it answers 503, while up it certifies the CSR's key.
type testSigner struct {
	ca       *x509.Certificate
	key      *ecdsa.PrivateKey
	up       atomic.Bool
	requests atomic.Int32
	url      string
}

func startTestSigner(t *testing.T) *testSigner {
	s := &testSigner{}
	var err error
	if s.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "boot test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.key.Public(), s.key)
	if err != nil {
		t.Fatal(err)
	}
	s.ca, _ = x509.ParseCertificate(der)
	srv := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if !s.up.Load() {
			http.Error(w, "signer down", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		block, _ := pem.Decode(body)
		if block == nil {
			http.Error(w, "no CSR", http.StatusBadRequest)
			return
		}
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil || csr.CheckSignature() != nil || r.URL.Query().Get("instance_id") != "4242" {
			http.Error(w, "bad CSR or instance", http.StatusBadRequest)
			return
		}
		leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "instance 4242"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, leaf, s.ca, csr.PublicKey, s.key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}))
	s.url = fmt.Sprintf("http://127.0.0.1:%d/api/v0/sign_cert/?instance_id=4242", srv.Port)
	return s
}

// readLeaf parses the instance certificate.
func readLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certPEM, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no certificate: %v", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("%s is not PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestRootfsBoot boots the image twice in one temporary root, in entrypoint
// mode, and checks every boot step: launch rules, the environment file
// (safe to source, kept with its edits across the restart), workspace,
// hooks (one failing), the certificate (self-signed while the signer is
// down, signed once it answers), provisioning (failing, then downloaded
// again and succeeding), the supervisor programs (ours and two
// template-style ones: one skipped with its marker, one serving through the
// portal with a pty progress bar in its log), `supervisorctl restart caddy`
// after an edit, and a SIGTERM that leaves no process.
func TestRootfsBoot(t *testing.T) {
	requireBootTools(t)
	b := newBootRoot(t, true)
	at := b.at

	// The workspace template: two new items, and one the workspace already
	// has, which must not be overwritten.
	mustMkdir(t, at("opt/workspace-internal/examples"))
	mustWrite(t, at("opt/workspace-internal/examples/hello.ipynb"), "{}", 0o644)
	mustWrite(t, at("opt/workspace-internal/.hidden"), "template", 0o644)
	mustWrite(t, at("opt/workspace-internal/notes.txt"), "template", 0o644)
	mustWrite(t, at("workspace/notes.txt"), "mine", 0o644)

	// Hooks: one runs at the first boot only, one at each boot, one fails.
	hookLog := filepath.Join(b.dir, "hooks.log")
	mustMkdir(t, at("etc/vast_boot.d/first_boot"))
	mustWrite(t, at("etc/vast_boot.d/first_boot/05-once.sh"), fmt.Sprintf("echo once >>%q\n", hookLog), 0o644)
	mustWrite(t, at("etc/vast_boot.d/10-every.sh"), fmt.Sprintf("echo every >>%q\n", hookLog), 0o644)
	mustWrite(t, at("etc/vast_boot.d/20-fail.sh"), "echo failing on purpose; exit 3\n", 0o644)

	// Provisioning from a URL: the first download fails when run (exit 7);
	// the next boot downloads it again and it succeeds. Windows line
	// endings must be removed (a "#!/bin/bash\r" line would not run).
	provisioned := filepath.Join(b.dir, "provisioned")
	var provisionOK atomic.Bool
	provSrv := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := 7
		if provisionOK.Load() {
			code = 0
		}
		script := fmt.Sprintf("#!/bin/bash\nif [[ -f $PROVISIONING_LOCK ]]; then lock=present; else lock=absent; fi\necho \"provisioning step one\"\necho \"lock=$lock\" >> %q\nexit %d\n", provisioned, code)
		_, _ = io.WriteString(w, strings.ReplaceAll(script, "\n", "\r\n"))
	}))
	signer := startTestSigner(t)

	portalExt, portalInt := freePort(t), freePort(t)
	tplExt, tplInt := freePort(t), freePort(t)
	jupyterExt, jupyterInt := freePort(t), freePort(t)
	addedExt := freePort(t)
	added := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "added app") }))
	const tricky = `it's "$(touch pwned)" $HOME \ and a backslash\`
	b.setEnv(
		"PORTAL_CONFIG="+fmt.Sprintf("localhost:%d:%d:/:Instance Portal|localhost:%d:%d:/:Template App|localhost:%d:%d:/:Jupyter",
			portalExt, portalInt, tplExt, tplInt, jupyterExt, jupyterInt),
		"VAST_CONTAINERLABEL=C.4242",
		"PORTAL_JUPYTER_PORT="+strconv.Itoa(jupyterExt),
		"JUPYTER_PORT="+strconv.Itoa(jupyterInt),
		"ENABLE_AUTH=false",
		"PUBLIC_IPADDR=192.0.2.10",
		"PROVISIONING_SCRIPT="+fmt.Sprintf("http://127.0.0.1:%d/provision.sh", provSrv.Port),
		"INSTANCE_CERT_SIGNER_URL="+signer.url,
		"TRICKY_VALUE="+tricky,
	)
	for _, p := range []int{portalExt, tplExt, jupyterExt, addedExt} {
		b.setEnv(fmt.Sprintf("VAST_TCP_PORT_%d=%d", p, p))
	}
	if b.nsMount {
		b.addTemplateProgram("template-app", templateApp(tplInt))
		b.addTemplateProgram("skipped-app", templateSkipped)
	}

	// ---- first boot ----
	bt := b.start()
	bt.waitCaddy()
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	fail := t.Fatalf // the cleanup prints the entrypoint's output

	yaml := b.read("etc/portal.yaml")
	for _, want := range []string{"Instance Portal", "Template App", fmt.Sprintf("internal_port: %d", jupyterInt)} {
		if !strings.Contains(yaml, want) {
			fail("portal.yaml lacks %q:\n%s", want, yaml)
		}
	}
	if !strings.Contains(bt.out.String(), "launch mode: entrypoint") {
		fail("the launch mode is not logged")
	}

	// The environment file: 0600, headed by the instance, and sourcing it
	// gives back every value exactly, without running anything.
	checkMode(t, at("etc/environment"), 0o600)
	if first, _, _ := strings.Cut(b.read("etc/environment"), "\n"); !strings.Contains(first, "instance C.4242") {
		fail("environment file header %q", first)
	}
	src := exec.Command("bash", "-c", `set -a; . "$1"; printf '%s\n%s' "$TRICKY_VALUE" "$ROOTFS_TEST_MARK"`, "_", at("etc/environment"))
	src.Dir, src.Env = b.dir, []string{"PATH=" + os.Getenv("PATH")}
	if got, err := src.Output(); err != nil || string(got) != tricky+"\n"+b.mark {
		fail("sourcing etc/environment gave %q (%v), want %q", got, err, tricky+"\n"+b.mark)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "pwned")); err == nil {
		fail("sourcing etc/environment ran a command substitution")
	}

	// The workspace: template items copied, the user's file kept.
	for p, want := range map[string]string{"workspace/examples/hello.ipynb": "{}", "workspace/.hidden": "template", "workspace/notes.txt": "mine"} {
		if got := b.read(p); got != want {
			fail("%s = %q, want %q", p, got, want)
		}
	}

	// Hooks: in order, the failing one named, the boot went on.
	if got, _ := os.ReadFile(hookLog); string(got) != "once\nevery\n" {
		fail("hooks ran as %q", got)
	}
	if !strings.Contains(bt.out.String(), "hook "+at("etc/vast_boot.d/20-fail.sh")+" failed (exit 3); the boot goes on") {
		fail("the failing hook is not named in the log")
	}

	// The certificate: the signer is down, so self-signed for our names, key
	// 0600, and the signer was asked a bounded number of times.
	checkMode(t, at("etc/instance.key"), 0o600)
	cert := readLeaf(t, at("etc/instance.crt"))
	if cert.IsCA || cert.CheckSignatureFrom(signer.ca) == nil || cert.VerifyHostname("localhost") != nil ||
		cert.VerifyHostname("127.0.0.1") != nil || cert.VerifyHostname("192.0.2.10") != nil {
		fail("first boot certificate: IsCA=%v issuer=%s DNS=%v IPs=%v", cert.IsCA, cert.Issuer, cert.DNSNames, cert.IPAddresses)
	}
	if n := signer.requests.Load(); n != 3 {
		fail("the signer was asked %d times, want 3 (one attempt with its retries)", n)
	}

	// Provisioning ran under the lock, failed, and said so; the boot went on.
	waitFor(t, 30*time.Second, "provisioning to fail", func() bool { return strings.Contains(b.read(".provisioning_failed"), "status=7") })
	if got, _ := os.ReadFile(provisioned); strings.TrimSpace(string(got)) != "lock=present" {
		fail("provisioning script saw %q, want lock=present", got)
	}
	if !strings.HasPrefix(b.read("provisioning.sh"), "#!/bin/bash\nif") {
		fail("provisioning.sh not downloaded without \\r: %q", b.read("provisioning.sh"))
	}
	waitFor(t, 5*time.Second, "the lock to be removed", func() bool { _, err := os.Stat(at(".provisioning")); return os.IsNotExist(err) })
	if _, err := os.Stat(at(".provisioning_complete")); err == nil {
		fail("a failed provisioning left .provisioning_complete")
	}
	if log := b.read("var/log/portal/provisioning.log"); !strings.Contains(log, "provisioning step one") || !strings.Contains(log, "provisioning failed (exit 7)") {
		fail("provisioning.log: %q", log)
	}
	// The dashboard learns it from /api/boot (the entrypoint exports the
	// markers' paths to caddy).
	boot := getBootStatus(t, portalInt)
	if boot["provisioning"] != "failed" || boot["code"] != "7" || !strings.Contains(fmt.Sprint(boot["message"]), "provisioning failed (exit 7)") {
		fail("/api/boot = %v, want failed with code 7", boot)
	}

	// The programs: caddy runs (supervisord's child); ours that are not
	// configured or not installed stay EXITED and say why.
	want := map[string]string{"caddy": "RUNNING", "tensorboard": "EXITED", "syncthing": "EXITED"}
	if b.nsMount {
		want["template-app"] = "RUNNING"
	}
	b.waitStates(want)
	if log := b.read("var/log/portal/tensorboard.log"); !strings.Contains(log, "Skipping tensorboard startup (not in "+at("etc/portal.yaml")+")") {
		fail("tensorboard.log does not say why it did not start: %q", log)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "skip", "tensorboard")); err != nil {
		fail("no skip marker for tensorboard: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(b.dir, "skip")); err != nil || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		fail("skip dir mode %v (%v), want 1777", fi.Mode(), err)
	}
	if b.read("var/log/portal/caddy.log") == "" || !strings.Contains(b.read("var/log/portal/caddy.log"), "Starting Caddy") {
		fail("caddy.log lacks the start line")
	}
	procs := markedProcs(b.mark)
	caddyPid := 0
	for pid, args := range procs {
		if strings.HasPrefix(args, "caddy run --adapter portal_yaml") {
			caddyPid = pid
		}
	}
	if caddyPid == 0 || !strings.Contains(procs[parentPid(caddyPid)], "supervisord") {
		fail("caddy (pid %d) is not supervisord's child: %v", caddyPid, procs)
	}

	if b.nsMount {
		checkTemplatePrograms(t, b, tplExt, portalInt)
	}

	// An edit to portal.yaml, then `supervisorctl restart caddy`: the new
	// app is served.
	edited := b.read("etc/portal.yaml") + fmt.Sprintf("  Added:\n    hostname: 127.0.0.1\n    external_port: %d\n    internal_port: %d\n    open_path: /\n    name: Added\n", addedExt, added.Port)
	mustWrite(t, at("etc/portal.yaml"), edited, 0o644)
	if out, err := b.ctl("restart", "caddy"); err != nil {
		fail("supervisorctl restart caddy: %v\n%s", err, out)
	}
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", addedExt), 200)

	// Removing portal.yaml and restarting caddy rewrites it from PORTAL_CONFIG.
	if err := os.Remove(at("etc/portal.yaml")); err != nil {
		t.Fatal(err)
	}
	if out, err := b.ctl("restart", "caddy"); err != nil {
		fail("supervisorctl restart caddy: %v\n%s", err, out)
	}
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	if !strings.Contains(b.read("etc/portal.yaml"), "Template App") {
		fail("portal.yaml not rewritten by caddy.sh")
	}
	bt.stop()

	// ---- second boot, same root ----
	// A user edit of the environment file, the signer back, the
	// provisioning script fixed at its URL.
	env := b.read("etc/environment") + "EDITED_VAR=\"edited value\"\n"
	mustWrite(t, at("etc/environment"), env, 0o600)
	signer.up.Store(true)
	provisionOK.Store(true)
	bt = b.start()
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	if !strings.Contains(b.read("etc/environment"), "EDITED_VAR=\"edited value\"") || !strings.Contains(bt.out.String(), "keeping "+at("etc/environment")) {
		fail("the edited environment file was not kept")
	}
	if b.nsMount {
		waitFor(t, 15*time.Second, "template-app to start with the edited environment", func() bool {
			return strings.Contains(b.read("var/log/portal/template-app.log"), "EDITED=edited value")
		})
	}
	if got, _ := os.ReadFile(hookLog); string(got) != "once\nevery\nevery\n" {
		fail("hooks after the second boot: %q", got)
	}
	cert = readLeaf(t, at("etc/instance.crt"))
	if cert.CheckSignatureFrom(signer.ca) != nil {
		fail("second boot: the certificate is not the signer's (issuer %s)", cert.Issuer)
	}
	if _, err := os.Stat(at("var/lib/portal/instance-cert-self-signed")); err == nil {
		fail("the self-signed marker is left after signing")
	}
	waitFor(t, 30*time.Second, "provisioning to complete", func() bool { _, err := os.Stat(at(".provisioning_complete")); return err == nil })
	if _, err := os.Stat(at(".provisioning_failed")); err == nil {
		fail(".provisioning_failed is left after a successful run")
	}
	bt.stop()
}

// checkTemplatePrograms: the template-style program serves through the
// portal, its log (with the pty's '\r' progress bar) is in the log viewer;
// the other one was skipped with its marker.
func checkTemplatePrograms(t *testing.T, b *bootRoot, tplExt, portalInt int) {
	t.Helper()
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", tplExt), 200)
	log := b.read("var/log/portal/template-app.log")
	if !strings.Contains(log, "\rprogress 33%\rprogress 66%\rprogress 99%\n") || strings.Contains(log, "\r\n") {
		t.Fatalf("template-app.log does not keep the progress bar as written: %q", log)
	}
	if !strings.Contains(log, "Starting Template App with EDITED=unset") {
		t.Fatalf("template-app.log: %q", log)
	}
	internal := &apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", portalInt)}
	var files struct {
		Files []struct {
			Name string `json:"name"`
		} `json:"files"`
	}
	internal.getJSON("/api/logs/files", &files)
	names := fmt.Sprint(files.Files)
	if !strings.Contains(names, "template-app.log") {
		t.Fatalf("the log viewer lists %s, not template-app.log", names)
	}
	waitFor(t, 10*time.Second, "the skip marker of skipped-app", func() bool {
		m, err := os.ReadFile(filepath.Join(b.dir, "skip", "skipped-app"))
		return err == nil && strings.TrimSpace(string(m)) == "Not Configured App"
	})
	// The portal's processes API reads the same markers.
	waitFor(t, 10*time.Second, "/api/processes to report skipped-app as skipped", func() bool {
		r, err := internal.send("GET", "/api/processes", "", nil)
		if err != nil {
			return false
		}
		var list struct {
			Processes []struct {
				Name    string `json:"name"`
				Skipped bool   `json:"skipped"`
				App     string `json:"app"`
			} `json:"processes"`
		}
		if json.Unmarshal([]byte(r.Body), &list) != nil {
			return false
		}
		for _, p := range list.Processes {
			if p.Name == "skipped-app" {
				return p.Skipped && p.App == "Not Configured App"
			}
		}
		return false
	})
	skipped := b.read("var/log/portal/skipped-app.log") + b.read("var/log/portal/skipped-app.log.old")
	if !strings.Contains(skipped, "Skipping skipped-app startup (not in "+b.at("etc/portal.yaml")+")") || strings.Contains(skipped, "must not get here") {
		t.Fatalf("skipped-app's log: %q", skipped)
	}
}

// TestRootfsLaunchModes boots a fresh root per launch mode and checks what
// portal.yaml says about Jupyter, what answers on the Jupyter port, and the
// link scheme.
func TestRootfsLaunchModes(t *testing.T) {
	requireBootTools(t)
	for _, mode := range []string{"jupyter", "ssh", "entrypoint"} {
		t.Run(mode, func(t *testing.T) {
			b := newBootRoot(t, false)
			portalExt, portalInt := freePort(t), freePort(t)
			jupyterExt, jupyterInt := freePort(t), freePort(t)
			b.setEnv(
				"PORTAL_CONFIG="+fmt.Sprintf("localhost:%d:%d:/:Instance Portal", portalExt, portalInt),
				"PORTAL_JUPYTER_PORT="+strconv.Itoa(jupyterExt), "JUPYTER_PORT="+strconv.Itoa(jupyterInt),
				fmt.Sprintf("VAST_TCP_PORT_%d=%d", portalExt, portalExt), fmt.Sprintf("VAST_TCP_PORT_%d=%d", jupyterExt, jupyterExt),
				"VAST_CONTAINERLABEL=C.77", "ENABLE_AUTH=false",
			)
			switch mode {
			case "jupyter":
				// The platform's Jupyter serves the port itself, with TLS.
				mustWrite(t, b.at(".launch"), "#!/bin/bash\njupyter notebook --port=8080 --certfile=/etc/instance.crt\n", 0o755)
				b.setEnv("PORTAL_CONFIG=" + fmt.Sprintf("localhost:%d:%d:/:Instance Portal|localhost:%d:%d:/:Jupyter|localhost:%d:%d:/terminals/1:Jupyter Terminal",
					portalExt, portalInt, jupyterExt, jupyterInt, jupyterExt, jupyterExt))
				platform := httpsStandIn(t, jupyterExt)
				defer platform.Close()
			case "ssh":
				mustWrite(t, b.at(".launch"), "#!/bin/bash\n/usr/sbin/sshd -D\n", 0o755)
				b.setEnv("PORTAL_CONFIG="+fmt.Sprintf("localhost:%d:%d:/:Instance Portal|localhost:%d:%d:/:Jupyter", portalExt, portalInt, jupyterExt, jupyterInt),
					"PROVISIONING_SCRIPT=apt-get install -y foo && echo done")
			}
			bt := b.start()
			bt.waitCaddy()
			waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
			if !strings.Contains(bt.out.String(), "launch mode: "+mode) {
				t.Fatalf("launch mode %s not logged", mode)
			}
			yaml := b.read("etc/portal.yaml")
			switch mode {
			case "jupyter":
				for _, want := range []string{
					fmt.Sprintf("external_port: %d\n    internal_port: %d\n    open_path: /\n    name: Jupyter\n    scheme: https\n", jupyterExt, jupyterExt),
					fmt.Sprintf("internal_port: %d\n    open_path: /terminals/1\n    name: Jupyter Terminal\n    scheme: https\n", jupyterExt),
				} {
					if !strings.Contains(yaml, want) {
						t.Fatalf("portal.yaml lacks %q:\n%s", want, yaml)
					}
				}
				// The platform's Jupyter, not caddy, answers on the port, with TLS.
				client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the stand-in's own certificate
				port := &apiClient{t: t, base: fmt.Sprintf("https://127.0.0.1:%d", jupyterExt), client: client}
				if _, body := port.call("GET", "/", "", nil); body != "platform jupyter" {
					t.Fatalf("port %d answered %q", jupyterExt, body)
				}
				// The dashboard's links into Jupyter are https.
				var apps []struct {
					Name   string `json:"name"`
					Scheme string `json:"scheme"`
				}
				(&apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", portalInt)}).getJSON("/api/apps", &apps)
				schemes := map[string]string{}
				for _, a := range apps {
					schemes[a.Name] = a.Scheme
				}
				if schemes["Jupyter"] != "https" || schemes["Jupyter Terminal"] != "https" {
					t.Fatalf("/api/apps schemes: %v", schemes)
				}
				b.waitStates(map[string]string{"jupyter": "EXITED"})
				if !strings.Contains(b.read("var/log/portal/jupyter.log"), "Refusing to start jupyter: the platform runs Jupyter") {
					t.Fatalf("jupyter.log: %q", b.read("var/log/portal/jupyter.log"))
				}
			case "ssh":
				if strings.Contains(yaml, "Jupyter") {
					t.Fatalf("Jupyter left in portal.yaml in SSH mode:\n%s", yaml)
				}
				if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", jupyterExt), time.Second); err == nil {
					c.Close()
					t.Fatalf("something listens on the Jupyter port %d in SSH mode", jupyterExt)
				}
				waitFor(t, 10*time.Second, "the inline PROVISIONING_SCRIPT to be refused", func() bool {
					return strings.Contains(b.read(".provisioning_failed"), "status=refused")
				})
				if !strings.Contains(b.read("var/log/portal/provisioning.log"), "holds script text, not a path or URL") {
					t.Fatalf("provisioning.log: %q", b.read("var/log/portal/provisioning.log"))
				}
			case "entrypoint":
				// Jupyter and its terminal added back; caddy proxies the
				// port to the Jupyter the image's wrapper starts.
				for _, want := range []string{
					fmt.Sprintf("external_port: %d\n    internal_port: %d\n    open_path: /\n    name: Jupyter\n", jupyterExt, jupyterInt),
					fmt.Sprintf("external_port: %d\n    internal_port: %d\n    open_path: /terminals/1\n    name: Jupyter Terminal\n", jupyterExt, jupyterExt),
				} {
					if !strings.Contains(yaml, want) {
						t.Fatalf("portal.yaml lacks %q:\n%s", want, yaml)
					}
				}
				if _, err := exec.LookPath("jupyter-notebook"); err != nil {
					// make test installs it (Debian's jupyter-notebook).
					t.Log("jupyter-notebook is not installed: only the starting-up page is checked")
					waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", jupyterExt), http.StatusBadGateway)
					break
				}
				// A real Jupyter (Debian's notebook, started by jupyter.sh
				// with the image's flags: no token of its own, the portal
				// guards it) answers through the portal, its terminal too.
				noRedirects := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				var last string
				if !testwait.Poll(60*time.Second, 100*time.Millisecond, func() bool {
					resp, err := noRedirects.Get(fmt.Sprintf("http://127.0.0.1:%d/", jupyterExt))
					if err != nil {
						last = err.Error()
						return false
					}
					resp.Body.Close()
					last = resp.Status + " Location " + resp.Header.Get("Location")
					return resp.StatusCode == http.StatusFound && strings.HasPrefix(resp.Header.Get("Location"), "/tree")
				}) {
					t.Fatalf("Jupyter through the portal: last answer %s\njupyter.log:\n%s", last, b.read("var/log/portal/jupyter.log"))
				}
				for path, want := range map[string]string{"/tree": "<title>Home Page", "/terminals/1": `data-ws-path="terminals/websocket/1"`} {
					resp, err := noRedirects.Get(fmt.Sprintf("http://127.0.0.1:%d%s", jupyterExt, path))
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
						t.Errorf("Jupyter %s through the portal: %s, no %q in %.300s", path, resp.Status, want, body)
					}
				}
				if log := b.read("var/log/portal/jupyter.log"); !strings.Contains(log, "is running at") {
					t.Errorf("jupyter.log: %q", log)
				}
			}
			bt.stop()
		})
	}
}

// httpsStandIn serves "platform jupyter" with TLS on 127.0.0.1:port, as the
// platform's own Jupyter does in Jupyter launch mode.
func httpsStandIn(t *testing.T, port int) *http.Server {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := selfSignedDER(t, key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "platform jupyter")
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	return srv
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

// getBootStatus reads the portal's /api/boot.
func getBootStatus(t *testing.T, portalInt int) map[string]any {
	t.Helper()
	var st map[string]any
	(&apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", portalInt)}).getJSON("/api/boot", &st)
	return st
}
