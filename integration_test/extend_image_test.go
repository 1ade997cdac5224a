package integration_test

import (
	"fmt"
	"net/http"
	"os"
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

	// Our image, as far as the recipe reads it.
	portal := filepath.Join(t.TempDir(), "portal")
	mustMkdir(t, portal)
	rootfs, _ := filepath.Abs("../rootfs")
	mustRun(t, "cp", "-a", rootfs+"/.", portal)
	mustRun(t, "cp", caddyBin, filepath.Join(portal, "usr/local/bin/caddy"))
	mustRun(t, "cp", buildFakeCloudflared(t), filepath.Join(portal, "usr/local/bin/cloudflared"))
	mustRun(t, "sh", "-c", `chmod 0755 "$1"/opt/instance-tools/bin/* "$1"/opt/supervisor-scripts/*.sh "$1"/opt/supervisor-scripts/utils/*.sh "$1"/usr/local/bin/*`, "sh", portal)

	ir := unpackRoot(t, tarball, "")
	root := ir.root
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
				mustRun(t, "cp", "-a", "-T", filepath.Join(portal, src), to)
				copies++
			}
		case "ENV":
			ir.applyENV(in.Args)
		case "RUN":
			if strings.Contains(in.Args, "apt-get install") {
				continue // mmdebstrap did it
			}
			ir.runStep(t, "examples/Dockerfile.extend", in)
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
