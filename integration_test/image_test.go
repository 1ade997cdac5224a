package integration_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testproc"
	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/shellwords"
)

// dockerDefaultPath is the PATH an image starts with when its base sets none.
const dockerDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// imageRoot is the image's runtime stage built without Docker: mmdebstrap
// makes a Debian bookworm root with the Dockerfile's own apt-get package
// list, the Dockerfile's RUN steps that need no registry run in it,
// rootfs/ and the binary under test are added, and /etc/hosts is written
// as Docker writes it. vars are the ARG defaults and ENV values of the
// runtime stage, as Docker passes them. The root is cached under the user
// cache dir, keyed by the package list and the apt sources.
type imageRoot struct {
	root string
	vars map[string]string
}

// requireImageTools skips a test that cannot build a Debian root here:
// under -short, when not root, or without mmdebstrap and the namespace
// tools.
func requireImageTools(t *testing.T) {
	t.Helper()
	skipShort(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: mmdebstrap, chroot and namespaces")
	}
	for _, bin := range []string{"mmdebstrap", "unshare", "nsenter", "chroot", "tar"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (Debian packages mmdebstrap, util-linux): %v", bin, err)
		}
	}
}

func newImageRoot(t *testing.T) *imageRoot {
	t.Helper()
	requireImageTools(t)
	instrs := readDockerfile(t)
	pkgs := runtimePackages(t, instrs)
	tarball := imageRootTarball(t, pkgs)

	ir := unpackRoot(t, tarball, "172.17.0.2\tportal-image-test\n")
	root := ir.root
	// The Dockerfile's COPY steps: the binary, then rootfs/.
	rootfs, _ := filepath.Abs("../rootfs")
	mustRun(t, "cp", caddyBin, filepath.Join(root, "usr/local/bin/caddy"))
	mustRun(t, "cp", "-a", rootfs+"/.", root)

	ir.vars["TARGETARCH"] = "amd64"
	for _, in := range finalStage(instrs) {
		switch in.Cmd {
		case "ARG":
			if k, v, ok := strings.Cut(in.Args, "="); ok {
				ir.vars[k] = v
			}
		case "ENV":
			ir.applyENV(in.Args)
		}
	}
	// The RUN steps, but the package install (mmdebstrap did it) and those
	// that need a registry this machine cannot reach.
	var leftOut []string
	for _, in := range finalStage(instrs) {
		switch {
		case in.Cmd != "RUN" || strings.Contains(in.Args, "apt-get install"):
		case in.Needs != "":
			leftOut = append(leftOut, fmt.Sprintf("line %d (needs %s)", in.Line, in.Needs))
		default:
			ir.runStep(t, "Dockerfile", in)
		}
	}
	t.Logf("left out, needing a registry not reachable here: %s", strings.Join(leftOut, "; "))
	// ca-certificates pulls in openssl; the boot must not need it (the
	// certificate is made in Go), so it is taken away here.
	if err := os.Rename(filepath.Join(root, "usr/bin/openssl"), filepath.Join(root, "usr/bin/openssl.hidden-by-test")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	// /venv/main is made by uv from PyPI in the image (left out above):
	// Debian's python3 -m venv stands in, so the shell's activation is real.
	mustRun(t, "chroot", root, "python3", "-m", "venv", "/venv/main")
	return ir
}

// unpackRoot extracts a Debian root made by imageRootTarball into a temp
// dir and writes its /etc/hosts as Docker does (without it "localhost"
// does not resolve), with extraHosts after the loopback lines. Its vars
// start with the PATH of an image whose base sets none.
func unpackRoot(t *testing.T, tarball, extraHosts string) *imageRoot {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	mustMkdir(t, root)
	mustRun(t, "tar", "-xf", tarball, "-C", root)
	mustWrite(t, filepath.Join(root, "etc/hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"+extraHosts, 0o644)
	return &imageRoot{root: root, vars: map[string]string{"PATH": dockerDefaultPath}}
}

// applyENV sets the variables of an ENV instruction's arguments, each
// value expanded with those set before it, as Docker does.
func (ir *imageRoot) applyENV(args string) {
	for _, w := range shellwords.Split(args) {
		if k, v, ok := strings.Cut(w, "="); ok {
			ir.vars[k] = expandVars(v, ir.vars)
		}
	}
}

// runStep runs a RUN instruction of file in the root, with only the
// image's variables in its environment, as Docker does.
func (ir *imageRoot) runStep(t *testing.T, file string, in dfInstr) {
	t.Helper()
	cmd := exec.Command("chroot", append([]string{ir.root, "/usr/bin/env", "-i"}, append(ir.env(), "/bin/sh", "-c", in.Args)...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s line %d in the root: %v\n%s\n%s", file, in.Line, err, in.Args, out)
	}
}

// mustRun runs a command on this machine, failing the test with its output
// when it fails.
func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func (ir *imageRoot) env() []string {
	var e []string
	for k, v := range ir.vars {
		e = append(e, k+"="+v)
	}
	return e
}

func (ir *imageRoot) at(p string) string { return filepath.Join(ir.root, p) }

// imageBoot is the entrypoint running as PID 1 of private pid and mount
// namespaces, chrooted into the image root, with volume bind-mounted on
// /workspace (as docker run -v) and, when given, cgroup on /sys/fs/cgroup.
type imageBoot struct {
	t    *testing.T
	ir   *imageRoot
	proc *testproc.Proc
	cmd  *exec.Cmd
	init int
	mark string
}

func (ir *imageRoot) boot(t *testing.T, volume, cgroup string, args ...string) *imageBoot {
	t.Helper()
	mark := fmt.Sprintf("image-%d-%d", os.Getpid(), time.Now().UnixNano())
	ir.vars["ROOTFS_TEST_MARK"] = mark
	script := `set -e
mount --make-rprivate /
mount -t proc proc "$ROOT/proc"
mount --bind "$VOLUME" "$ROOT/workspace"
if [ -n "$CGROUP" ]; then mkdir -p "$ROOT/sys/fs/cgroup" && mount --bind "$CGROUP" "$ROOT/sys/fs/cgroup"; fi
exec chroot "$ROOT" /opt/instance-tools/bin/entrypoint.sh "$@"`
	cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount", "/bin/sh", "-c", script, "sh"}, args...)...)
	cmd.Env = append(ir.env(), "ROOT="+ir.root, "VOLUME="+volume, "CGROUP="+cgroup)
	// Cleanups run last-in first-out: the container is killed first, then
	// anything of it that escaped the process group.
	t.Cleanup(func() { killMarked(mark) })
	// A test that got this far without a SIGTERM of its own has failed:
	// nothing to be polite about.
	proc := testproc.Start(t, cmd, testproc.Options{Name: "container", Stop: syscall.SIGKILL, Grace: time.Second})
	b := &imageBoot{t: t, ir: ir, proc: proc, cmd: cmd, mark: mark}
	// On failure, the programs' logs (registered after testproc's stop, so
	// it runs before it: the files are still there).
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(ir.at("var/log/portal/*.log"))
		for _, l := range logs {
			body, _ := os.ReadFile(l)
			if len(body) > 3000 {
				body = body[len(body)-3000:]
			}
			t.Logf("%s:\n%s", l, body)
		}
	})
	if !testwait.Poll(10*time.Second, 50*time.Millisecond, func() bool {
		if c := childOf(cmd.Process.Pid); c != 0 && strings.Contains(cmdline(c), "entrypoint.sh") {
			b.init = c
		}
		return b.init != 0
	}) {
		t.Fatalf("no entrypoint under unshare:\n%s", proc.Out.String())
	}
	return b
}

// inside runs a command in the container, as `docker exec` does: its
// namespaces, its root, an empty environment plus env.
func (b *imageBoot) inside(env []string, args ...string) (string, error) {
	full := append([]string{"-t", strconv.Itoa(b.init), "-m", "-p", "--", "chroot", b.ir.root, "/usr/bin/env", "-i",
		"PATH=" + b.ir.vars["PATH"], "ROOTFS_TEST_MARK=" + b.mark}, env...)
	out, err := exec.Command("nsenter", append(full, args...)...).CombinedOutput()
	return string(out), err
}

func (b *imageBoot) mustInside(args ...string) string {
	b.t.Helper()
	out, err := b.inside(nil, args...)
	if err != nil {
		b.t.Fatalf("%v in the container: %v\n%s", args, err, out)
	}
	return out
}

func (b *imageBoot) ctl(args ...string) string {
	b.t.Helper()
	return b.mustInside(append([]string{"supervisorctl"}, args...)...)
}

// stop sends SIGTERM to PID 1, as `docker stop` does, and checks that
// everything ended cleanly.
func (b *imageBoot) stop() {
	t := b.t
	t.Helper()
	if err := syscall.Kill(b.init, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !b.proc.Wait(30 * time.Second) {
		t.Fatal("the container still runs 30 s after SIGTERM")
	}
	if err := b.proc.Err(); err != nil {
		t.Fatalf("the container exited with %v after SIGTERM", err)
	}
	if left := markedProcs(b.mark); len(left) > 0 {
		t.Fatalf("processes left: %v", left)
	}
	if !strings.Contains(b.proc.Out.String(), "supervisord exited (status 0)") {
		t.Fatal("no clean supervisord exit")
	}
}

// scriptServer serves name → body on 127.0.0.1 (the container shares the
// test's network), for BOOT_SCRIPT, HOTFIX_SCRIPT and the pyworker
// bootstrap.
func scriptServer(t *testing.T, scripts map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := scripts[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// shellProbe prints what a template author's shell must see, one
// NAME=value per line.
const shellProbe = `echo "venv=${VIRTUAL_ENV:-}"
echo "python=$(command -v python)"
echo "uv=$(command -v uv || true)"
echo "umask=$(umask)"
echo "pwd=$(pwd)"
for v in PYTHONUNBUFFERED PIP_BREAK_SYSTEM_PACKAGES NVIDIA_DRIVER_CAPABILITIES HF_HOME ENABLE_AGENT_BANNER OMP_NUM_THREADS MKL_NUM_THREADS OPENBLAS_NUM_THREADS NUMEXPR_NUM_THREADS TOKIO_WORKER_THREADS; do
  eval "echo $v=\${$v:-}"
done
if sudo -n true 2>/dev/null; then echo sudo=ok; else echo sudo=no; fi
`

// shellEnv parses shellProbe's output.
func shellEnv(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, " \t") {
			m[k] = v
		}
	}
	return m
}

// TestImageBoot boots the image as a container starts: the real entrypoint
// as PID 1, a separate directory as the /workspace volume, a cgroup fixture
// whose pids.max is low, a fake NVIDIA driver version and a fake CUDA
// compat directory, HOTFIX_SCRIPT from a local server, and the reference's
// boot flags. The portal must serve, `supervisorctl restart caddy` (run
// inside, as over SSH) must work, cron must run, Syncthing must run as the
// non-root user with its GUI served through the portal and the instance
// token as its API key, the shell must be the reference's for root and
// `user` through a login shell, `ssh host 'cmd'` and a terminal, and
// SIGTERM must stop everything.
//
// Not covered here (no registry): uv, the vastai CLI, Jupyter and nvm's
// node, which the Dockerfile installs from PyPI, GitHub and nodejs.org;
// the shell's nvm line runs only where ${NVM_DIR}/nvm.sh exists. SSH
// itself is not installed (the platform injects sshd): `su` through PAM,
// with sshd's SSH_CLIENT for `ssh host 'cmd'`, stands in for it.
func TestImageBoot(t *testing.T) {
	ir := newImageRoot(t)
	root := ir.root
	volume := t.TempDir()
	// Root's SSH key, which the boot gives to `user`.
	mustMkdir(t, ir.at("root/.ssh"))
	mustWrite(t, ir.at("root/.ssh/authorized_keys"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIImageTestKey test@image\n", 0o600)
	// A host whose pids budget is low for its CPUs: 8 pids, a 3-core quota.
	cgroup := t.TempDir()
	mustWrite(t, filepath.Join(cgroup, "pids.max"), "8\n", 0o644)
	mustWrite(t, filepath.Join(cgroup, "cpu.max"), "300000 100000\n", 0o644)
	// A driver (CUDA 12.4) older than the image's toolkit (12.8), whose
	// compat library cannot initialise here (no GPU).
	mustWrite(t, ir.at("fake-nvidia-version"), "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n", 0o644)
	mustMkdir(t, ir.at("usr/local/cuda-12.8/compat"))
	mustWrite(t, ir.at("usr/local/cuda-12.8/compat/libcuda.so.1"), "", 0o644)
	scripts := scriptServer(t, map[string]string{
		"hotfix.sh": "#!/bin/bash\necho hotfix ran as $(id -u)\ntouch /hotfix-ran\n",
	})

	portalExt, portalInt := freePort(t), freePort(t)
	syncExt, syncInt := freePort(t), freePort(t)
	syncListen := freePort(t)
	token := randomSecret(t, "image-")
	ir.vars["PORTAL_CONFIG"] = fmt.Sprintf("localhost:%d:%d:/:Instance Portal|localhost:%d:%d:/:Syncthing", portalExt, portalInt, syncExt, syncInt)
	// Syncthing refuses a foreign Host; the image sets this to its default
	// internal port, and a template that moves the port moves this too.
	ir.vars["CADDY_HEADER_UP_LOCALHOST"] = strconv.Itoa(syncInt)
	ir.vars["OPEN_BUTTON_TOKEN"] = token
	ir.vars["PORTAL_ADMIN_LISTEN"] = "127.0.0.1:" + strconv.Itoa(freePort(t))
	ir.vars["PORTAL_DEFAULT_TUNNELS"] = "false"
	ir.vars["INSTANCE_CERT_SIGNER_URL"] = "off" // no console from here
	ir.vars["HOME"] = "/root"
	ir.vars["VAST_CONTAINERLABEL"] = "C.4242"
	ir.vars["VAST_TCP_PORT_72299"] = strconv.Itoa(syncListen)
	ir.vars["HOTFIX_SCRIPT"] = scripts + "hotfix.sh"
	ir.vars["CUDA_DRIVER_VERSION_FILE"] = "/fake-nvidia-version"
	ir.vars["TOKIO_WORKER_THREADS"] = "5" // the template's own value: kept

	b := ir.boot(t, volume, cgroup, "--no-agent-banner", "--no-update-portal", "--no-update-vast", "--bogus-flag")
	out := b.proc.Out

	// The boot (certificate, CUDA probe, hotfix) comes first: on this
	// shared machine it may take a while.
	waitFor(t, 90*time.Second, "supervisord to start caddy", func() bool { return strings.Contains(out.String(), "Starting Caddy") })
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	// The external port, with authentication on (the default).
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", portalExt), http.StatusUnauthorized)

	if st := b.ctl("status", "caddy"); !strings.Contains(st, "RUNNING") {
		t.Fatalf("caddy: %s", st)
	}
	if got := b.ctl("restart", "caddy"); !strings.Contains(got, "caddy: started") {
		t.Fatalf("supervisorctl restart caddy: %s", got)
	}
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)

	// The image's own programs: cron, and Syncthing (installed from the
	// Dockerfile's package list) as the non-root user, its GUI through
	// the portal with the instance's token.
	if st := b.ctl("status", "cron"); !strings.Contains(st, "RUNNING") {
		t.Errorf("cron: %s", st)
	}
	syncthing := &apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", syncExt), token: token}
	syncGet := func(path string, apiKey bool) (int, string) {
		var hdr map[string]string
		if apiKey {
			hdr = map[string]string{"X-API-Key": token}
		}
		r, err := syncthing.send("GET", path, "", hdr)
		if err != nil {
			return 0, err.Error()
		}
		return r.Code, r.Body
	}
	var gui string
	if !testwait.Poll(90*time.Second, 250*time.Millisecond, func() bool {
		code, body := syncGet("/", false)
		gui = fmt.Sprintf("%d %.300s", code, body)
		return code == 200 && strings.Contains(body, "Syncthing")
	}) {
		t.Fatalf("Syncthing's GUI through the portal: last answer %s\n%s", gui, b.ctl("status"))
	}
	found := 0
	for pid, args := range markedProcs(b.mark) {
		if strings.Contains(args, "syncthing serve") {
			found++
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if !regexp.MustCompile(`(?m)^Uid:\s+1001\s`).Match(status) {
				t.Errorf("Syncthing (pid %d) does not run as user (uid 1001):\n%s", pid, status)
			}
			if strings.Contains(args, token) {
				t.Errorf("the API key is on Syncthing's command line: %s", args)
			}
		}
	}
	if found == 0 {
		t.Error("no Syncthing process found")
	}
	// (8) The REST API with the instance token as X-API-Key, through the
	// portal; refused without it. The sync listener: the mapped port.
	if code, body := syncGet("/rest/system/status", true); code != 200 || !strings.Contains(body, `"myID"`) {
		t.Errorf("Syncthing /rest/system/status with X-API-Key: %d %.300s", code, body)
	}
	if code, _ := syncGet("/rest/system/status", false); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Errorf("Syncthing /rest/system/status without the key: %d, want 403", code)
	}
	wantListen := fmt.Sprintf(`"tcp://0.0.0.0:%d"`, syncListen)
	var opts string
	if !testwait.Poll(30*time.Second, 250*time.Millisecond, func() bool {
		_, opts = syncGet("/rest/config/options", true)
		return strings.Contains(opts, wantListen)
	}) {
		t.Errorf("Syncthing's listen addresses lack %s: %.500s", wantListen, opts)
	}
	var ss string
	if !testwait.Poll(30*time.Second, 250*time.Millisecond, func() bool {
		ss, _ = b.inside(nil, "ss", "-Hltnp", fmt.Sprintf("sport = :%d", syncListen))
		return strings.Contains(ss, "syncthing")
	}) {
		t.Errorf("nothing listens on the sync port %d: %s", syncListen, ss)
	}

	// (10) pidof caddy: the portal server only, not the log splitters.
	pids := strings.Fields(b.mustInside("pidof", "caddy"))
	if len(pids) != 1 {
		t.Errorf("pidof caddy: %v, want the server alone", pids)
	} else if args, _ := b.inside(nil, "cat", "/proc/"+pids[0]+"/cmdline"); !strings.Contains(args, "run") {
		t.Errorf("pidof caddy names %s: %q", pids[0], args)
	}
	if tees := strings.Fields(b.mustInside("pidof", "log-tee")); len(tees) < 3 {
		t.Errorf("pidof log-tee: %v, want one per program", tees)
	}
	// (9) The log directory.
	if fi, err := os.Stat(ir.at("var/log/portal")); err != nil || fi.Mode().Perm()|fi.Mode()&os.ModeSticky != 0o777|os.ModeSticky {
		t.Errorf("/var/log/portal: %v (%v), want 1777", fi.Mode(), err)
	}
	// (1) Everyday tools.
	if got, err := b.inside(nil, "/bin/bash", "-c", `for c in wget curl jq git git-lfs ip ss ping nc dig sudo rsync rclone tmux zip unzip less nano vim htop lsof strace xz zstd; do command -v "$c" >/dev/null || echo "missing $c"; done`); err != nil || got != "" {
		t.Errorf("tools: %s %v", got, err)
	}
	// sudo for `user`, the file as the reference writes it.
	if fi, err := os.Stat(ir.at("etc/sudoers.d/user")); err != nil || fi.Mode().Perm() != 0o440 {
		t.Errorf("/etc/sudoers.d/user: %v", err)
	}
	// (3) Flags: each known one said, the meaningless ones accepted, the
	// unknown one named; HOTFIX_SCRIPT ran early, as root.
	for _, want := range []string{"flag --no-agent-banner", "flag --no-update-portal: accepted", "flag --no-update-vast: accepted",
		"unknown flag --bogus-flag: ignored", "applying HOTFIX_SCRIPT", "hotfix ran as 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("boot log lacks %q", want)
		}
	}
	if _, err := os.Stat(ir.at("hotfix-ran")); err != nil {
		t.Errorf("HOTFIX_SCRIPT did not run: %v", err)
	}
	if b, _ := os.ReadFile(ir.at("var/log/hotfix.log")); !strings.Contains(string(b), "hotfix ran") {
		t.Errorf("/var/log/hotfix.log: %q", b)
	}
	// (5) The thread caps in /etc/environment's managed block, the
	// template's TOKIO_WORKER_THREADS kept.
	envFile, _ := os.ReadFile(ir.at("etc/environment"))
	if !strings.Contains(string(envFile), "# VAST_CPU_THREAD_CAPS_BEGIN") || !strings.Contains(string(envFile), "\nOMP_NUM_THREADS=3\n") ||
		!strings.Contains(string(envFile), "# TOKIO_WORKER_THREADS: left at user/template value") {
		t.Errorf("/etc/environment has no thread caps block:\n%s", envFile)
	}
	// (6) The driver is older than the toolkit, the compat library does
	// not initialise without a GPU: said, and the loader left alone. The
	// OpenCL ICD of NVIDIA's driver.
	if !strings.Contains(out.String(), "[cuda] driver 550.54 (CUDA 12.4): driver CUDA 12.4 < toolkit 12.8; its compat libraries do not initialise") {
		t.Error("boot log lacks the CUDA forward-compatibility decision")
	}
	if _, err := os.Stat(ir.at("etc/ld.so.conf.d/0-compat-cuda.conf")); !os.IsNotExist(err) {
		t.Errorf("0-compat-cuda.conf written without a GPU: %v", err)
	}
	if icd, _ := os.ReadFile(ir.at("etc/OpenCL/vendors/nvidia.icd")); strings.TrimSpace(string(icd)) != "libnvidia-opencl.so.1" {
		t.Errorf("nvidia.icd: %q", icd)
	}
	// (11) cert-usable on the boot's pair, a missing key, an expired pair.
	if o, err := b.inside(nil, "cert-usable"); err != nil {
		t.Errorf("cert-usable on the instance pair: %v %s", err, o)
	}
	writeExpiredPair(t, ir.at("tmp/old.crt"), ir.at("tmp/old.key"))
	for args, want := range map[string]int{"/etc/instance.crt /nonexistent": 1, "/tmp/old.crt /tmp/old.key": 3, "/tmp/old.crt /etc/instance.key": 1} {
		o, err := b.inside(nil, append([]string{"/opt/instance-tools/bin/cert-usable"}, strings.Fields(args)...)...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != want {
			t.Errorf("cert-usable %s: %v %s, want exit %d", args, err, o, want)
		}
	}

	// (2) The shell, as root and as `user`: a login (SSH), `ssh host
	// 'cmd'` (sshd runs bash -c with SSH_CLIENT set, PAM's environment)
	// and a terminal (an interactive bash, as Jupyter's).
	sshClient := "SSH_CLIENT=127.0.0.1 40000 22"
	for _, user := range []string{"root", "user"} {
		for mode, args := range map[string][]string{
			"login":    {"su", "-l", user, "-c", shellProbe},
			"ssh cmd":  {"su", user, "-s", "/bin/bash", "-c", shellProbe},
			"terminal": {"su", user, "-s", "/bin/bash", "-c", "cd / && exec bash -i -c " + shellQuote(shellProbe)},
		} {
			o, err := b.inside([]string{sshClient, "TERM=dumb"}, args...)
			if err != nil {
				t.Errorf("%s shell of %s: %v\n%s", mode, user, err, o)
				continue
			}
			got := shellEnv(o)
			want := map[string]string{
				"venv": "/venv/main", "python": "/venv/main/bin/python", "umask": "0002",
				"PYTHONUNBUFFERED": "1", "PIP_BREAK_SYSTEM_PACKAGES": "1", "NVIDIA_DRIVER_CAPABILITIES": "all",
				"HF_HOME": "/workspace/.hf_home", "ENABLE_AGENT_BANNER": "false", "sudo": "ok",
				"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3", "NUMEXPR_NUM_THREADS": "3",
				"TOKIO_WORKER_THREADS": "5",
			}
			if mode == "terminal" {
				want["pwd"] = "/workspace"
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s shell of %s: %s=%q, want %q\n%s", mode, user, k, got[k], v, o)
				}
			}
		}
	}

	// The boot's other steps, seen from outside.
	if keys, err := os.ReadFile(ir.at("home/user/.ssh/authorized_keys")); err != nil || !strings.Contains(string(keys), "ImageTestKey") {
		t.Errorf("user's authorized_keys: %q (%v)", keys, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(volume, &st); err != nil || st.Uid != 1001 {
		t.Errorf("/workspace (the volume) owner uid %d (%v), want user (1001)", st.Uid, err)
	}
	if _, err := os.Stat(filepath.Join(volume, ".hf_home")); err != nil {
		t.Errorf("HF_HOME on the volume: %v", err)
	}
	if leaf := readLeaf(t, filepath.Join(root, "etc/instance.crt")); leaf.VerifyHostname("localhost") != nil {
		t.Errorf("instance certificate names %v", leaf.DNSNames)
	}
	b.stop()
}

// shellQuote quotes s for bash.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// writeExpiredPair writes a self-signed pair that expired yesterday.
func writeExpiredPair(t *testing.T, crtPath, keyPath string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	writePair(t, crtPath, keyPath, key, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
}

// TestImageServerless boots the image with SERVERLESS=true: the portal
// (and with it the tunnels), Jupyter and Syncthing skip themselves as
// exit_serverless.sh says, and the pyworker program waits for provisioning,
// then runs its bootstrap script (served here on 127.0.0.1 in place of
// GitHub's start_server.sh).
func TestImageServerless(t *testing.T) {
	ir := newImageRoot(t)
	scripts := scriptServer(t, map[string]string{
		"start_server.sh": "if [ -e /.provisioning ]; then echo pyworker ran under the lock; fi; echo pyworker bootstrap ran; touch /pyworker-ran; exec sleep 600\n",
		"provisioning.sh": "sleep 2; echo provisioned\n",
	})
	portalInt := freePort(t)
	ir.vars["PORTAL_CONFIG"] = fmt.Sprintf("localhost:%d:%d:/:Instance Portal|localhost:%d:%d:/:Syncthing", freePort(t), portalInt, freePort(t), freePort(t))
	ir.vars["SERVERLESS"] = "true"
	ir.vars["PYWORKER_BOOTSTRAP_URL"] = scripts + "start_server.sh"
	ir.vars["PROVISIONING_SCRIPT"] = scripts + "provisioning.sh"
	ir.vars["PORTAL_DEFAULT_TUNNELS"] = "false"
	ir.vars["INSTANCE_CERT_SIGNER_URL"] = "off"
	ir.vars["HOME"] = "/root"
	b := ir.boot(t, t.TempDir(), "")
	if !testwait.Poll(60*time.Second, 250*time.Millisecond, func() bool {
		_, err := os.Stat(ir.at("pyworker-ran"))
		return err == nil
	}) {
		t.Fatalf("the pyworker bootstrap did not run:\n%s", b.proc.Out.String())
	}
	// The bootstrap ran once provisioning had finished (the lock gone).
	if o := b.proc.Out.String(); strings.Contains(o, "pyworker ran under the lock") {
		t.Error("pyworker started while provisioning ran")
	}
	for _, p := range []string{"caddy", "jupyter", "syncthing"} {
		waitFor(t, 60*time.Second, p+" skipping itself", func() bool {
			log, _ := os.ReadFile(ir.at("var/log/portal/" + p + ".log"))
			return strings.Contains(string(log), "Skipping "+p+" startup (Serverless)")
		})
	}
	if st := b.ctl("status", "pyworker"); !strings.Contains(st, "RUNNING") {
		t.Errorf("pyworker: %s", st)
	}
	if _, err := os.Stat(ir.at("tmp/supervisor-skip/pyworker")); err != nil {
		t.Errorf("pyworker is not hidden from the portal: %v", err)
	}
	if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", portalInt)); err == nil {
		resp.Body.Close()
		t.Errorf("the portal answers on a serverless worker: %s", resp.Status)
	}
	if pids, _ := b.inside(nil, "pidof", "caddy"); strings.TrimSpace(pids) != "" {
		t.Errorf("caddy runs on a serverless worker: %s", pids)
	}
	b.stop()
}

// imageRootTarball returns a mmdebstrap tarball of bookworm with pkgs,
// built once and cached; it skips the test when no apt mirror answers.
func imageRootTarball(t *testing.T, pkgs []string) string {
	t.Helper()
	sources := aptSources()
	if sources == "" {
		t.Skip("no apt sources file on this machine for mmdebstrap")
	}
	srcBody, _ := os.ReadFile(sources)
	sum := sha256.Sum256([]byte(strings.Join(pkgs, ",") + "\n" + string(srcBody)))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "portal-image-test")
	tarball := filepath.Join(dir, "bookworm-"+hex.EncodeToString(sum[:8])+".tar")
	if fi, err := os.Stat(tarball); err == nil && fi.Mode().IsRegular() {
		return tarball
	}
	mustMkdir(t, dir)
	// mmdebstrap picks its output format from the name: keep ".tar".
	tmp := strings.TrimSuffix(tarball, ".tar") + ".tmp-" + strconv.Itoa(os.Getpid()) + ".tar"
	start := time.Now()
	out, err := exec.Command("timeout", "300", "mmdebstrap", "--variant=minbase", "--include="+strings.Join(pkgs, ","),
		"bookworm", tmp, sources).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		tail := string(out)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		t.Skipf("mmdebstrap could not build the root (is an apt mirror reachable?): %v\n%s", err, tail)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		t.Fatal(err)
	}
	t.Logf("mmdebstrap built the runtime root in %v: %s", time.Since(start).Round(time.Second), strings.Join(pkgs, " "))
	return tarball
}

// aptSources is the machine's apt sources file (deb822 first).
func aptSources() string {
	m, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	if len(m) > 0 {
		return m[0]
	}
	if _, err := os.Stat("/etc/apt/sources.list"); err == nil {
		return "/etc/apt/sources.list"
	}
	return ""
}

// childOf returns a child process of pid (0 when none).
func childOf(pid int) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err == nil && parentPid(p) == pid {
			return p
		}
	}
	return 0
}

// syncTestVars: the settings of a container in the volume sync tests (an
// instance with its own ports, no tunnels, no certificate signer).
func (ir *imageRoot) syncTestVars(t *testing.T) {
	ir.vars["PORTAL_CONFIG"] = fmt.Sprintf("localhost:%d:%d:/:Instance Portal", freePort(t), freePort(t))
	ir.vars["OPEN_BUTTON_TOKEN"] = randomSecret(t, "sync-")
	ir.vars["PORTAL_ADMIN_LISTEN"] = "127.0.0.1:" + strconv.Itoa(freePort(t))
	ir.vars["PORTAL_DEFAULT_TUNNELS"] = "false"
	ir.vars["INSTANCE_CERT_SIGNER_URL"] = "off"
	ir.vars["HOME"] = "/root"
}

// TestImageSyncEnvironment: two instances of the image share one volume
// and boot at once with --sync-environment. Exactly one copies /venv/main
// (and /.uv, /opt/nvm) to ${WORKSPACE}/.environment_sync/<env hash>/, the
// other waits for its .synced marker, and both run /venv/main from the
// volume: a file one writes into the venv the other sees. Then one boots
// as a different image (another /.env_hash): it gets a directory of its
// own, not the first image's venv.
func TestImageSyncEnvironment(t *testing.T) {
	a, b := newImageRoot(t), newImageRoot(t)
	volume := t.TempDir()
	a.syncTestVars(t)
	b.syncTestVars(t)
	hashBytes, err := os.ReadFile(a.at(".env_hash"))
	hash := strings.TrimSpace(string(hashBytes))
	if err != nil || len(hash) != 12 {
		t.Fatalf("/.env_hash: %q %v", hashBytes, err)
	}
	const synced = "--sync-environment: /venv, /.uv and /opt/nvm are on the volume"
	ba := a.boot(t, volume, "", "--sync-environment")
	bb := b.boot(t, volume, "", "--sync-environment")
	for _, x := range []*imageBoot{ba, bb} {
		waitFor(t, 180*time.Second, "the environment on the volume, then caddy", func() bool {
			o := x.proc.Out.String()
			return strings.Contains(o, synced) && strings.Contains(o, "Starting Caddy")
		})
	}
	dirs, _ := os.ReadDir(filepath.Join(volume, ".environment_sync"))
	if len(dirs) != 1 || dirs[0].Name() != hash {
		t.Fatalf(".environment_sync holds %v, want one directory %s", dirs, hash)
	}
	envDir := filepath.Join(volume, ".environment_sync", hash)
	if _, err := os.Stat(filepath.Join(envDir, ".synced")); err != nil {
		t.Errorf(".synced: %v", err)
	}
	if _, err := os.Stat(filepath.Join(envDir, ".syncing")); !os.IsNotExist(err) {
		t.Errorf(".syncing left: %v", err)
	}
	copies := strings.Count(ba.proc.Out.String()+bb.proc.Out.String(), "--sync-environment: copying the environments")
	if copies != 1 {
		t.Errorf("%d instances copied the environments, want 1", copies)
	}
	want := "/workspace/.environment_sync/" + hash + "/venv/main"
	for _, x := range []*imageBoot{ba, bb} {
		if got := strings.TrimSpace(x.mustInside("readlink", "/venv/main")); got != want {
			t.Errorf("/venv/main → %q, want %q", got, want)
		}
		if got := strings.TrimSpace(x.mustInside("/venv/main/bin/python", "-c", "import sys; print(sys.prefix)")); got != "/venv/main" {
			t.Errorf("the venv's python: prefix %q", got)
		}
	}
	ba.mustInside("/bin/sh", "-c", "echo installed-on-a > /venv/main/from-a")
	if got := strings.TrimSpace(bb.mustInside("cat", "/venv/main/from-a")); got != "installed-on-a" {
		t.Errorf("the other instance sees %q", got)
	}
	ba.stop()
	bb.stop()

	// The same volume under a different image: its own /.env_hash and its
	// own /venv/main (b's root stands in for it).
	mustWrite(t, b.at(".env_hash"), "otherimage01\n", 0o644)
	if err := os.Remove(b.at("venv/main")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "chroot", b.root, "python3", "-m", "venv", "/venv/main")
	b.vars["PORTAL_CONFIG"] = fmt.Sprintf("localhost:%d:%d:/:Instance Portal", freePort(t), freePort(t))
	b.vars["PORTAL_ADMIN_LISTEN"] = "127.0.0.1:" + strconv.Itoa(freePort(t))
	bc := b.boot(t, volume, "", "--sync-environment")
	waitFor(t, 180*time.Second, "the other image's environment, then caddy", func() bool {
		o := bc.proc.Out.String()
		return strings.Contains(o, synced) && strings.Contains(o, "Starting Caddy")
	})
	if got := strings.TrimSpace(bc.mustInside("readlink", "/venv/main")); got != "/workspace/.environment_sync/otherimage01/venv/main" {
		t.Errorf("a different image reuses %q", got)
	}
	if _, err := os.Stat(filepath.Join(volume, ".environment_sync", hash, "venv/main/from-a")); err != nil {
		t.Errorf("the first image's venv was touched: %v", err)
	}
	bc.stop()
}
