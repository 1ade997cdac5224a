package integration_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProvisionBootServices boots the image's entrypoint with a
// provisioning manifest in /provisioning.yaml whose services entry is a
// real program: provisioning runs after supervisord starts, under the
// lock; supervisord picks the new program up over its socket; the portal
// (watching portal.yaml) serves the new app without a restart; and
// /.provisioning_complete is left.
func TestProvisionBootServices(t *testing.T) {
	requireBootTools(t)
	b := newBootRoot(t, false)
	portalExt, portalInt := freePort(t), freePort(t)
	appExt, appInt := freePort(t), freePort(t)
	manifest := fmt.Sprintf(`version: 1
write_files:
  - path: ${WORKSPACE}/www/index.html
    content: "provisioned app\n"
services:
  - name: prov-app
    portal_search_term: Prov App
    venv: system
    workdir: ${WORKSPACE}/www
    command: exec python3 -m http.server %d --bind 127.0.0.1
    external_port: %d
    internal_port: %d
post_commands:
  - test -f "$PROVISIONING_LOCK" && echo locked > ${WORKSPACE}/lock-seen
`, appInt, appExt, appInt)
	mustWrite(t, b.at("provisioning.yaml"), manifest, 0o644)
	b.setEnv(
		"PORTAL_CONFIG="+fmt.Sprintf("localhost:%d:%d:/:Instance Portal", portalExt, portalInt),
		"ENABLE_AUTH=false",
		fmt.Sprintf("VAST_TCP_PORT_%d=%d", portalExt, portalExt),
		fmt.Sprintf("VAST_TCP_PORT_%d=%d", appExt, appExt),
	)
	bt := b.start()
	defer func() {
		if t.Failed() {
			t.Logf("entrypoint output:\n%s", bt.out.String())
		}
	}()
	waitFor(t, 60*time.Second, "provisioning to complete", func() bool {
		_, err := os.Stat(b.at(".provisioning_complete"))
		return err == nil
	})
	if got := b.read("workspace/lock-seen"); got != "locked\n" {
		t.Errorf("post_commands did not run under the lock: %q", got)
	}
	b.waitStates(map[string]string{"prov-app": "RUNNING"})
	if y := b.read("etc/portal.yaml"); !strings.Contains(y, "Prov App") || !strings.Contains(y, fmt.Sprintf("internal_port: %d", appInt)) {
		t.Fatalf("portal.yaml:\n%s", y)
	}
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/index.html", appExt), 200)
	if log := b.read("var/log/portal/provisioning.log"); !strings.Contains(log, "Supervisor services registered") {
		t.Errorf("provisioning.log:\n%s", log)
	}
	if _, err := os.Stat(b.at(".provisioner_state/services.hash")); err != nil {
		t.Errorf("no state kept: %v", err)
	}
	bt.stop()
}

// TestProvisionBootFailureResumes: a manifest failing in a phase leaves
// /.provisioning_failed naming that phase and why, which /api/boot (the
// dashboard's banner) shows; the next boot resumes, skipping the phases
// already done, and completes.
func TestProvisionBootFailureResumes(t *testing.T) {
	requireBootTools(t)
	b := newBootRoot(t, false)
	portalExt, portalInt := freePort(t), freePort(t)
	flag := filepath.Join(b.dir, "ready")
	count := filepath.Join(b.dir, "files-written")
	mustWrite(t, b.at("provisioning.yaml"), fmt.Sprintf(`version: 1
on_failure: {max_retries: 1}
write_files:
  - path: %s/written
    content: "x"
post_commands:
  - echo once >> %s
  - test -f %s || { echo "the flag is missing"; exit 5; }
`, b.dir, count, flag), 0o644)
	b.setEnv(
		"PORTAL_CONFIG="+fmt.Sprintf("localhost:%d:%d:/:Instance Portal", portalExt, portalInt),
		"ENABLE_AUTH=false",
		fmt.Sprintf("VAST_TCP_PORT_%d=%d", portalExt, portalExt),
	)
	bt := b.start()
	waitFor(t, 60*time.Second, "the failed marker", func() bool {
		_, err := os.Stat(b.at(".provisioning_failed"))
		return err == nil
	})
	marker := b.read(".provisioning_failed")
	if !strings.Contains(marker, "phase post_commands") || !strings.Contains(marker, "exit 5") {
		t.Errorf("failed marker: %q", marker)
	}
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	st := getBootStatus(t, portalInt)
	if st["provisioning"] != "failed" || !strings.Contains(fmt.Sprint(st["message"]), "phase post_commands") {
		t.Errorf("/api/boot: %v", st)
	}
	bt.stop()

	mustWrite(t, flag, "", 0o644)
	bt = b.start()
	waitFor(t, 60*time.Second, "provisioning to complete on the next boot", func() bool {
		_, err := os.Stat(b.at(".provisioning_complete"))
		return err == nil
	})
	if _, err := os.Stat(b.at(".provisioning_failed")); err == nil {
		t.Error("the failed marker is left after a success")
	}
	if log := b.read("var/log/portal/provisioning.log"); !strings.Contains(log, "Early files unchanged, skipping") {
		t.Errorf("the second boot redid write_files:\n%s", log)
	}
	// supervisord must be fully up before the stop (a SIGTERM in its own
	// start-up ends it with 143).
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	bt.stop()
}

// TestProvisionerWrapper: /opt/instance-tools/bin/provisioner takes the
// reference's command line (--help, --dry-run, the manifest argument).
func TestProvisionerWrapper(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	wrapper, _ := filepath.Abs("../rootfs/opt/instance-tools/bin/provisioner")
	m := filepath.Join(dir, "m.yaml")
	mustWrite(t, m, "version: 1\ndownloads:\n  - url: https://huggingface.co/org/repo/resolve/main/w.safetensors\n    dest: /tmp/x/\n  - url: https://example.invalid/thing.bin\n    dest: /tmp/y/\n", 0o644)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(wrapper, args...)
		cmd.Env = append(os.Environ(), "CADDY_BIN="+caddyBin, "PROVISIONER_STATE_DIR="+dir+"/state",
			"PROVISIONER_LOG_FILE="+dir+"/p.log", "PROVISIONING_MANIFEST="+dir+"/not-used.yaml")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("--help"); err != nil || !strings.Contains(out, "--dry-run") {
		t.Errorf("--help: %v\n%s", err, out)
	}
	out, err := run(m, "--dry-run")
	if err != nil || strings.Count(out, "[DRY RUN] Would download ") != 2 {
		t.Errorf("--dry-run: %v\n%s", err, out)
	}
	// Without an argument the reference's command runs only
	// PROVISIONING_SCRIPT (none here): PROVISIONING_MANIFEST is the boot's.
	if out, err := run(); err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("no argument: %v\n%s", err, out)
	}
	mustWrite(t, m, "version: 1\napt_packages: ffmpeg\n", 0o644)
	if out, err := run(m); err == nil || !strings.Contains(out, "m.yaml:2: apt_packages: want a list of strings") {
		t.Errorf("malformed manifest: %v\n%s", err, out)
	}
}
