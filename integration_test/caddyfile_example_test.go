package integration_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Caddyfile.example must stay valid for the binary we ship, with every
// directive of ours in it.
func TestCaddyfileExampleValidates(t *testing.T) {
	skipShort(t)
	p := &Portal{t: t, Dir: t.TempDir()}
	p.Env = []string{"HOME=" + p.Dir, "WEB_PASSWORD=example-secret"}
	// The example names the image's state directory; vastauth keeps its
	// session salt there even when a secret is set, so validate a copy
	// that points into the test's own directory.
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(p.Dir, "Caddyfile")
	mustWrite(t, example, strings.ReplaceAll(string(raw), "/var/lib/portal", filepath.Join(p.Dir, "state")), 0o644)
	out, err := p.Caddy("validate", "--config", example)
	if err != nil || !strings.Contains(out, "Valid configuration") {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	if strings.Contains(out, "not formatted") {
		t.Errorf("Caddyfile.example is not `caddy fmt` clean:\n%s", out)
	}
	adapted, err := p.Caddy("adapt", "--config", example)
	if err != nil {
		t.Fatalf("caddy adapt: %v\n%s", err, adapted)
	}
	for _, directive := range []string{`"handler":"vastauth"`, `"handler":"logstream"`, `"handler":"gpu_metrics"`, `"handler":"tunnels_api"`, `"tunnels":{`,
		`"handler":"portal_processes"`, `"handler":"portal_apps"`, `"handler":"portal_links"`, `"handler":"portal_boot_status"`, `"handler":"portal_provisioning"`,
		`"handler":"portal_front"`, `"handler":"portal_internal_guard"`, `"wrapper":"portal_connlimit"`,
		`"filter":"vastauth_redact"`, `"secrets":["{env.OPEN_BUTTON_TOKEN}","{env.WEB_PASSWORD}"]`} {
		if !strings.Contains(adapted, directive) {
			t.Errorf("Caddyfile.example lacks %s", directive)
		}
	}
	// Run as root, it must not install a root CA nor serve its internal API
	// over automatic HTTPS (issue 20: every http://127.0.0.1:11111/api call
	// then got 400).
	if !strings.Contains(adapted, `"automatic_https":{"disable":true}`) {
		t.Error("Caddyfile.example leaves automatic HTTPS on")
	}
	if strings.Contains(adapted, `"pki"`) && !strings.Contains(adapted, `"install_trust":false`) {
		t.Error("Caddyfile.example has a PKI app that installs its root CA")
	}
	if strings.Contains(adapted, "tls_connection_policies") {
		t.Error("Caddyfile.example serves TLS somewhere")
	}
	if strings.Contains(adapted, "example-secret") {
		t.Error("a secret was inlined into the adapted JSON")
	}
}
