package integration_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImageExtendRecipe (issue 21) boots the shape examples/Dockerfile.extend
// makes, without Docker: a plain Debian root with only the recipe's
// apt-get packages (mmdebstrap, cached like the image test's root), then
// the recipe's COPY --from=portal steps taken from a stand-in for our image
// (rootfs/, the binary under test, a stand-in cloudflared), its RUN and ENV
// steps, and the entrypoint as PID 1. supervisord must start caddy and the
// portal must answer on both its ports.
func TestImageExtendRecipe(t *testing.T) {
	requireImageTools(t)
	text, err := os.ReadFile("../examples/Dockerfile.extend")
	if err != nil {
		t.Fatal(err)
	}
	instrs := parseDockerfile(string(text))
	tarball := imageRootTarball(t, runtimePackages(t, instrs))
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}

	// Our image, as far as the recipe reads it.
	portal := filepath.Join(t.TempDir(), "portal")
	mustMkdir(t, portal)
	rootfs, _ := filepath.Abs("../rootfs")
	run("cp", "-a", rootfs+"/.", portal)
	run("cp", caddyBin, filepath.Join(portal, "usr/local/bin/caddy"))
	run("cp", buildFakeCloudflared(t), filepath.Join(portal, "usr/local/bin/cloudflared"))
	run("sh", "-c", `chmod 0755 "$1"/opt/instance-tools/bin/* "$1"/opt/supervisor-scripts/*.sh "$1"/opt/supervisor-scripts/utils/*.sh "$1"/usr/local/bin/*`, "sh", portal)

	root := filepath.Join(t.TempDir(), "root")
	mustMkdir(t, root)
	run("tar", "-xf", tarball, "-C", root)
	mustWrite(t, filepath.Join(root, "etc/hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644)
	ir := &imageRoot{root: root, vars: map[string]string{"PATH": dockerDefaultPath}}
	copies := 0
	for _, in := range finalStage(instrs) {
		switch in.Cmd {
		case "COPY":
			words := strings.Fields(in.Args)
			if len(words) < 3 || words[0] != "--from=portal" {
				t.Fatalf("line %d: want COPY --from=portal SRC… DST: %s", in.Line, in.Args)
			}
			srcs, dst := words[1:len(words)-1], words[len(words)-1]
			for _, src := range srcs {
				to := filepath.Join(root, dst)
				if strings.HasSuffix(dst, "/") {
					mustMkdir(t, to)
					to = filepath.Join(to, filepath.Base(src))
				} else {
					mustMkdir(t, filepath.Dir(to))
				}
				run("cp", "-a", "-T", filepath.Join(portal, src), to)
				copies++
			}
		case "ENV":
			for _, w := range shellWords(in.Args) {
				if k, v, ok := strings.Cut(w, "="); ok {
					ir.vars[k] = expandVars(v, ir.vars)
				}
			}
		case "RUN":
			if strings.Contains(in.Args, "apt-get install") {
				continue // mmdebstrap did it
			}
			cmd := exec.Command("chroot", append([]string{root, "/usr/bin/env", "-i"}, append(ir.env(), "/bin/sh", "-c", in.Args)...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("examples/Dockerfile.extend line %d in the root: %v\n%s", in.Line, err, out)
			}
		}
	}
	if copies == 0 {
		t.Fatal("the recipe copies nothing")
	}

	portalExt, portalInt := freePort(t), freePort(t)
	ir.vars["PORTAL_CONFIG"] = fmt.Sprintf("localhost:%d:%d:/:Instance Portal", portalExt, portalInt)
	ir.vars["PORTAL_ADMIN_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ir.vars["PORTAL_DEFAULT_TUNNELS"] = "false"
	ir.vars["INSTANCE_CERT_SIGNER_URL"] = "off"
	ir.vars["HOME"] = "/root"
	b := ir.boot(t, t.TempDir(), "", "--no-agent-banner", "--no-update-portal", "--no-update-vast")
	waitFor(t, 90*time.Second, "supervisord to start caddy", func() bool { return strings.Contains(b.proc.Out.String(), "Starting Caddy") })
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/health", portalInt), 200)
	// The external port asks for the login (authentication is on).
	waitStatus(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", portalExt), http.StatusUnauthorized)
	b.stop()
}
