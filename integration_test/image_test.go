package integration_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
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
)

// dockerDefaultPath is the PATH an image starts with when its base sets none.
const dockerDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// TestImageBoot builds the image's runtime stage without Docker and boots
// it as a container would start: mmdebstrap makes a Debian bookworm root
// with the Dockerfile's own apt-get package list, the Dockerfile's RUN
// steps that need no registry run in it, rootfs/ and the binary under test
// are added, /etc/hosts is written as Docker writes it, and the real
// entrypoint runs as PID 1 of a private pid and mount namespace. The portal
// must serve, `supervisorctl restart caddy` (run inside the root, as over
// SSH) must work, cron must run, Syncthing must run as the non-root user
// with its GUI served through the portal, and SIGTERM must stop everything. The root is cached
// under the user cache dir, keyed by the package list and the apt sources.
func TestImageBoot(t *testing.T) {
	skipShort(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: mmdebstrap, chroot and namespaces")
	}
	for _, bin := range []string{"mmdebstrap", "unshare", "chroot", "tar"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (Debian packages mmdebstrap, util-linux): %v", bin, err)
		}
	}
	instrs := readDockerfile(t)
	pkgs := runtimePackages(t, instrs)
	tarball := imageRootTarball(t, pkgs)

	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	mustMkdir(t, root)
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("tar", "-xf", tarball, "-C", root)
	// The Dockerfile's COPY steps: the binary, then rootfs/.
	rootfs, _ := filepath.Abs("../rootfs")
	run("cp", caddyBin, filepath.Join(root, "usr/local/bin/caddy"))
	run("cp", "-a", rootfs+"/.", root)
	// Docker writes /etc/hosts; without it "localhost" does not resolve.
	mustWrite(t, filepath.Join(root, "etc/hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n172.17.0.2\tportal-image-test\n", 0o644)

	// ARG defaults and ENV values of the runtime stage, as Docker passes them.
	vars := map[string]string{"PATH": dockerDefaultPath, "TARGETARCH": "amd64"}
	for _, in := range finalStage(instrs) {
		switch in.Cmd {
		case "ARG":
			if k, v, ok := strings.Cut(in.Args, "="); ok {
				vars[k] = v
			}
		case "ENV":
			for _, w := range shellWords(in.Args) {
				if k, v, ok := strings.Cut(w, "="); ok {
					vars[k] = expandVars(v, vars)
				}
			}
		}
	}
	env := func() []string {
		var e []string
		for k, v := range vars {
			e = append(e, k+"="+v)
		}
		return e
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
			cmd := exec.Command("chroot", append([]string{root, "/usr/bin/env", "-i"}, append(env(), "/bin/sh", "-c", in.Args)...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("Dockerfile line %d in the root: %v\n%s\n%s", in.Line, err, in.Args, out)
			}
		}
	}
	t.Logf("left out, needing a registry not reachable here: %s", strings.Join(leftOut, "; "))
	// ca-certificates pulls in openssl; the boot must not need it (the
	// certificate is made in Go), so it is taken away here.
	if err := os.Rename(filepath.Join(root, "usr/bin/openssl"), filepath.Join(root, "usr/bin/openssl.hidden-by-test")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}

	// Root's SSH key, which the boot gives to `user`.
	mustMkdir(t, filepath.Join(root, "root/.ssh"))
	mustWrite(t, filepath.Join(root, "root/.ssh/authorized_keys"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIImageTestKey test@image\n", 0o600)

	portalExt, portalInt := freePort(t), freePort(t)
	syncExt, syncInt := freePort(t), freePort(t)
	token := randomSecret(t, "image-")
	mark := fmt.Sprintf("image-%d-%d", os.Getpid(), time.Now().UnixNano())
	vars["PORTAL_CONFIG"] = fmt.Sprintf("localhost:%d:%d:/:Instance Portal|localhost:%d:%d:/:Syncthing", portalExt, portalInt, syncExt, syncInt)
	// Syncthing refuses a foreign Host; the image sets this to its default
	// internal port, and a template that moves the port moves this too.
	vars["CADDY_HEADER_UP_LOCALHOST"] = strconv.Itoa(syncInt)
	vars["OPEN_BUTTON_TOKEN"] = token
	vars["PORTAL_ADMIN_LISTEN"] = "127.0.0.1:" + strconv.Itoa(freePort(t))
	vars["PORTAL_DEFAULT_TUNNELS"] = "false"
	vars["INSTANCE_CERT_SIGNER_URL"] = "off" // no console from here
	vars["HOME"] = "/root"
	vars["ROOTFS_TEST_MARK"] = mark

	// Cleanups run last-in first-out: the container is killed first, then
	// anything of it that escaped the process group.
	t.Cleanup(func() { killMarked(mark) })
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--mount-proc", "--root="+root, "/opt/instance-tools/bin/entrypoint.sh")
	cmd.Env = env()
	// A test that got this far without the SIGTERM below has failed:
	// nothing to be polite about.
	proc := testproc.Start(t, cmd, testproc.Options{Name: "container", Stop: syscall.SIGKILL, Grace: time.Second})
	out := proc.Out

	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	// The external port, with authentication on (the default).
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", portalExt), http.StatusUnauthorized)

	ctl := func(args ...string) string {
		t.Helper()
		b, err := exec.Command("chroot", append([]string{root, "supervisorctl"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("supervisorctl %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	if st := ctl("status", "caddy"); !strings.Contains(st, "RUNNING") {
		t.Fatalf("caddy: %s", st)
	}
	if got := ctl("restart", "caddy"); !strings.Contains(got, "caddy: started") {
		t.Fatalf("supervisorctl restart caddy: %s", got)
	}
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)

	// The image's own programs: cron, and Syncthing (installed from the
	// Dockerfile's package list) as the non-root user, its GUI through
	// the portal with the instance's token.
	if st := ctl("status", "cron"); !strings.Contains(st, "RUNNING") {
		t.Errorf("cron: %s", st)
	}
	var gui string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", syncExt), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), "Syncthing") {
				break
			}
			gui = fmt.Sprintf("%s %.300s", resp.Status, b)
		} else {
			gui = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("Syncthing's GUI through the portal: last answer %s\n%s", gui, ctl("status"))
		}
	}
	found := 0
	for pid, args := range markedProcs(mark) {
		if strings.Contains(args, "syncthing serve") {
			found++
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if !regexp.MustCompile(`(?m)^Uid:\s+1001\s`).Match(status) {
				t.Errorf("Syncthing (pid %d) does not run as user (uid 1001):\n%s", pid, status)
			}
		}
	}
	if found == 0 {
		t.Error("no Syncthing process found")
	}

	// The boot's other steps, seen from outside.
	if keys, err := os.ReadFile(filepath.Join(root, "home/user/.ssh/authorized_keys")); err != nil || !strings.Contains(string(keys), "ImageTestKey") {
		t.Errorf("user's authorized_keys: %q (%v)", keys, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(root, "workspace"), &st); err != nil || st.Uid != 1001 {
		t.Errorf("/workspace owner uid %d (%v), want user (1001)", st.Uid, err)
	}
	if leaf := readLeaf(t, filepath.Join(root, "etc/instance.crt")); leaf.VerifyHostname("localhost") != nil {
		t.Errorf("instance certificate names %v", leaf.DNSNames)
	}

	// SIGTERM to PID 1 of the namespace, as `docker stop` sends it.
	init := childOf(cmd.Process.Pid)
	if init == 0 {
		t.Fatal("no init process under unshare")
	}
	if err := syscall.Kill(init, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !proc.Wait(30 * time.Second) {
		t.Fatal("the container still runs 30 s after SIGTERM")
	}
	if err := proc.Err(); err != nil {
		t.Fatalf("the container exited with %v after SIGTERM", err)
	}
	if left := markedProcs(mark); len(left) > 0 {
		t.Fatalf("processes left: %v", left)
	}
	if !strings.Contains(out.String(), "supervisord exited (status 0)") {
		t.Fatal("no clean supervisord exit")
	}
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
