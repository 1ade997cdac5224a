package integration_test

// Issue 20's boot findings, on the real entrypoint.sh: each test sources
// the script (it runs main only when executed) and calls one step.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var entrypointScript = filepath.Join("..", "rootfs", "opt", "instance-tools", "bin", "entrypoint.sh")

// bootStep runs `resolve_paths; <step>` of entrypoint.sh with env (and
// PATH), bounded by limit; it returns the output and whether it finished.
func bootStep(t *testing.T, step string, limit time.Duration, env ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", `. "$1" && resolve_paths && `+step, "_", entrypointScript)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, _ := cmd.CombinedOutput()
	return string(out), ctx.Err() == nil
}

// TestEnvironmentFileNeverRunsAnything: a newline in VAST_CONTAINERLABEL put
// a command on the header comment's second line, run by bash and dash
// when /etc/environment is sourced (issue 20). The header and every value
// below must stay inert, and the values must read back as they were.
func TestEnvironmentFileNeverRunsAnything(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	touch := "touch " + marker
	file := filepath.Join(dir, "environment")
	hostile := map[string]string{
		"H_SUBST":     "$(" + touch + ")",
		"H_BACKTICK":  "`" + touch + "`",
		"H_QUOTE":     `"; ` + touch + `; echo "`,
		"H_SINGLE":    `'; ` + touch + `; '`,
		"H_BACKSLASH": `trailing\`,
		"H_ESCQUOTE":  `\"; ` + touch + `; \"`,
		"H_DOLLAR":    "${PATH}$HOME$$",
		"H_ARITH":     "$((1+1))",
		"H_SEMI":      "a; " + touch,
		"H_AMP":       "a && " + touch,
		"H_PIPE":      "a | " + touch,
		"H_CR":        "a\r" + touch,
		"H_BANG":      "!! !-1",
		"H_GLOB":      "* ? [a]",
		"H_BIDI":      "a\u202e" + touch,
	}
	env := []string{"PORTAL_ENV_FILE=" + file, "PORTAL_ROOT=" + dir, "VAST_CONTAINERLABEL=C.1\n" + touch + "\n#",
		"H_NEWLINE=a\n" + touch}
	for k, v := range hostile {
		env = append(env, k+"="+v)
	}
	if out, ok := bootStep(t, "write_environment", 30*time.Second, env...); !ok || !strings.Contains(out, "wrote "+file) {
		t.Fatalf("write_environment: %v %s", ok, out)
	}
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(string(body), "\n"); !strings.HasPrefix(first, "# Environment of instance C.1_touch_") {
		t.Errorf("header %q", first)
	}
	for _, sh := range []string{"bash", "dash"} {
		out, err := exec.Command(sh, "-c", `set -a; . "$1"`, "_", file).CombinedOutput()
		if _, statErr := os.Stat(marker); statErr == nil {
			t.Fatalf("sourcing the environment file with %s ran a command (%v %s):\n%s", sh, err, out, body)
		}
	}
	for k, v := range hostile {
		out, err := exec.Command("bash", "-c", `set -a; . "$1"; printf %s "$`+k+`"`, "_", file).Output()
		if err != nil || string(out) != v {
			t.Errorf("%s read back as %q (%v), want %q", k, out, err, v)
		}
	}
	if strings.Contains(string(body), "H_NEWLINE") {
		t.Error("a value with a newline must be left out")
	}
}

// TestSSHKeysAreWrittenAsTheUser: root appended to whatever
// ~user/.ssh/authorized_keys linked to and chmodded it, made a linked
// ~user/.ssh 700, and blocked the boot on a FIFO (issue 20). The keys are
// now written by the user, links and non-regular files are refused, and
// the step is bounded in time.
func TestSSHKeysAreWrittenAsTheUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to act as the user nobody")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv missing")
	}
	base, err := os.MkdirTemp("", "sshkeys-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	rootKeys := filepath.Join(base, "root_keys")
	mustWrite(t, rootKeys, "ssh-ed25519 AAAAkey1 one\n# comment\nssh-ed25519 AAAAkey2 two\n", 0o600)
	rootFile := filepath.Join(base, "root-owned")
	mustWrite(t, rootFile, "root's own\n", 0o644)
	rootDir := filepath.Join(base, "root-dir")
	mustMkdir(t, rootDir)
	if err := os.Chmod(rootDir, 0o755); err != nil {
		t.Fatal(err)
	}

	home := func(name string) string {
		h := filepath.Join(base, name)
		mustMkdir(t, h)
		if err := os.Chown(h, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return h
	}
	run := func(h string) (string, bool) {
		return bootStep(t, "propagate_keys", 30*time.Second,
			"PORTAL_USER=nobody", "PORTAL_USER_HOME="+h, "ROOT_AUTHORIZED_KEYS="+rootKeys, "PORTAL_ROOT="+base)
	}
	asNobody := func(args ...string) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("as nobody %v: %v %s", args, err, out)
		}
	}

	// The ordinary case: both keys, once, 600 in a 700 directory, the user's.
	ok := home("ok")
	for range 2 {
		if out, done := run(ok); !done {
			t.Fatalf("ordinary case did not finish: %s", out)
		}
	}
	keys := filepath.Join(ok, ".ssh", "authorized_keys")
	if got, _ := os.ReadFile(keys); string(got) != "ssh-ed25519 AAAAkey1 one\nssh-ed25519 AAAAkey2 two\n" {
		t.Errorf("authorized_keys = %q", got)
	}
	checkMode(t, keys, 0o600)
	checkMode(t, filepath.Join(ok, ".ssh"), 0o700)
	if fi, err := os.Stat(keys); err == nil && fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("authorized_keys owned by uid %d", fi.Sys().(*syscall.Stat_t).Uid)
	}

	// authorized_keys links to a root-owned file: left as it was.
	linked := home("linked-file")
	asNobody("mkdir", filepath.Join(linked, ".ssh"))
	asNobody("ln", "-s", rootFile, filepath.Join(linked, ".ssh", "authorized_keys"))
	out, done := run(linked)
	if got, _ := os.ReadFile(rootFile); !done || string(got) != "root's own\n" {
		t.Errorf("a linked authorized_keys: %q after (%v) %s", got, done, out)
	}
	checkMode(t, rootFile, 0o644)

	// .ssh links to a root-owned directory: its mode is kept.
	linkedDir := home("linked-dir")
	asNobody("ln", "-s", rootDir, filepath.Join(linkedDir, ".ssh"))
	if out, done := run(linkedDir); !done {
		t.Errorf("a linked .ssh did not finish: %s", out)
	}
	checkMode(t, rootDir, 0o755)
	if _, err := os.Stat(filepath.Join(rootDir, "authorized_keys")); err == nil {
		t.Error("keys written into the root-owned directory")
	}

	// authorized_keys is a FIFO: refused, and the step ends.
	fifo := home("fifo")
	asNobody("mkdir", filepath.Join(fifo, ".ssh"))
	asNobody("mkfifo", filepath.Join(fifo, ".ssh", "authorized_keys"))
	if out, done := run(fifo); !done || !strings.Contains(out, "not a regular file") {
		t.Errorf("a FIFO authorized_keys: finished=%v %s", done, out)
	}
}

// TestProvisioningLogsMaskURLCredentials: the PROVISIONING_SCRIPT URL's
// user:PASSWORD@…?token=… reached provisioning.log (shown in the
// dashboard), the failure marker and the container log (issue 20). Every
// provisioning line now goes through `caddy portal redact`.
func TestProvisioningLogsMaskURLCredentials(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	mustMkdir(t, logDir)
	failed := filepath.Join(dir, "failed")
	bin := filepath.Join(dir, "bin")
	mustMkdir(t, bin)
	mustSymlink(t, caddyBin, filepath.Join(bin, "caddy"))
	out, ok := bootStep(t, `provisioning_failed download "downloading PROVISIONING_SCRIPT https://alice:PASSWORD1@h.example/p.sh?token=T0KEN2 failed"`,
		30*time.Second, "PATH="+bin+":"+os.Getenv("PATH"), "PORTAL_ROOT="+dir, "PORTAL_LOG_DIR="+logDir, "PROVISIONING_FAILED="+failed)
	logged, _ := os.ReadFile(filepath.Join(logDir, "provisioning.log"))
	marker, _ := os.ReadFile(failed)
	for what, text := range map[string]string{"output": out, "provisioning.log": string(logged), "failure marker": string(marker)} {
		if !ok || !strings.Contains(text, "https://…@h.example/p.sh?…") || strings.Contains(text, "PASSWORD1") || strings.Contains(text, "T0KEN2") {
			t.Errorf("%s: %q", what, text)
		}
	}
}
