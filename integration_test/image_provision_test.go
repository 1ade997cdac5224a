package integration_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/provstatus"
)

// TestImageProvisionApt: the image boots with PROVISIONING_MANIFEST naming
// a manifest in the container whose apt_packages is [sl] (a 13 kB
// package). The provisioner runs apt-get inside the image's Debian root,
// against the root's own apt sources (the machine's, reachable from the
// container, which shares the host's network): /usr/games/sl is installed
// in the root, /.provisioning_complete is written, and /api/provisioning,
// through the booted portal, says the run and its apt phase are done.
func TestImageProvisionApt(t *testing.T) {
	ir := newImageRoot(t)
	ir.syncTestVars(t)
	portalExt := freePort(t)
	ir.vars["PORTAL_CONFIG"] = fmt.Sprintf("localhost:%d:%d:/:Instance Portal", portalExt, freePort(t))
	ir.vars["PROVISIONING_MANIFEST"] = "/root/apt.yaml"
	mustWrite(t, ir.at("root/apt.yaml"), "version: 1\napt_packages:\n  - sl\n", 0o644)
	if _, err := os.Stat(ir.at("usr/games/sl")); !os.IsNotExist(err) {
		t.Fatalf("/usr/games/sl is in the root before provisioning: %v", err)
	}

	b := ir.boot(t, t.TempDir(), "")
	// apt-get update fetches the indexes of the root's sources: allow for
	// a slow mirror on this shared machine.
	waitFor(t, 8*time.Minute, "/.provisioning_complete, or the manifest's failure", func() bool {
		_, err := os.Stat(ir.at(".provisioning_complete"))
		return err == nil || strings.Contains(b.proc.Out.String(), "the provisioning manifest failed")
	})
	if _, err := os.Stat(ir.at(".provisioning_complete")); err != nil {
		t.Fatalf("provisioning failed:\n%s", b.proc.Out.String())
	}
	if fi, err := os.Stat(ir.at("usr/games/sl")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("/usr/games/sl in the root: %v", err)
	}
	if got := b.mustInside("dpkg-query", "-W", "-f", "${Status}", "sl"); got != "install ok installed" {
		t.Errorf("dpkg says sl is %q", got)
	}

	// The run as the portal shows it, on the external port with the
	// instance's token.
	var st provstatus.Status
	var body string
	waitFor(t, 90*time.Second, "/api/provisioning through the portal", func() bool {
		var code int
		code, body = hostRequest(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/api/provisioning", portalExt), fmt.Sprintf("127.0.0.1:%d", portalExt), "", "",
			"Authorization", "Bearer "+ir.vars["OPEN_BUTTON_TOKEN"])
		return code == 200 && json.Unmarshal([]byte(body), &st) == nil
	})
	if st.State != provstatus.Done || st.Source != "/root/apt.yaml" {
		t.Errorf("/api/provisioning: state %q source %q, want done from /root/apt.yaml\n%s", st.State, st.Source, body)
	}
	apt := false
	for _, p := range st.Phases {
		if p.Name == "apt" {
			apt = true
			if p.State != provstatus.Done || p.Items != 1 || p.StartedAt == nil || p.FinishedAt == nil {
				t.Errorf("apt phase: %+v, want done with 1 package", p)
			} else {
				t.Logf("the apt phase (apt-get update, then install sl) took %v", p.FinishedAt.Sub(*p.StartedAt).Round(time.Millisecond))
			}
		}
	}
	if !apt {
		t.Errorf("/api/provisioning has no apt phase: %s", body)
	}
	b.stop()
}
