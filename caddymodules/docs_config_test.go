package caddymodules

import (
	"os"
	"testing"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/bootstatus"
	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/connlimit"
	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/hostguard"
	"github.com/instanceportal/portal/instancecert"
	"github.com/instanceportal/portal/logstream"
	"github.com/instanceportal/portal/portallinks"
	"github.com/instanceportal/portal/supervisor"
	"github.com/instanceportal/portal/tunnels"
	"github.com/instanceportal/portal/vastauth"
)

// configDocs lists the settings tables the docs carry. Each is generated
// from the struct that declares the settings (JSON key, type, the default
// from Default(), the godoc), between "<!-- begin NAME -->" and
// "<!-- end NAME -->" in the doc, so the docs cannot drift from the code.
// Run `go test ./caddymodules -run ConfigDocs -update` after changing a
// declaration.
var configDocs = []struct {
	doc, name string // the Markdown file and the marker name
	dir, typ  string // the package directory and the struct type
	def       any    // the package's Default()
}{
	{"../docs/processes.md", "supervisor", "../supervisor", "Config", supervisor.Default()},
	{"../docs/processes.md", "appstate", "../appstate", "Config", appstate.Default()},
	{"../docs/processes.md", "portallinks", "../portallinks", "Config", portallinks.Default()},
	{"../docs/tunnels.md", "tunnels-config", "../tunnels", "Config", tunnels.Default()},
	{"../docs/tunnels.md", "tunnels-app", "../tunnels", "App", tunnels.App{}},
	{"../docs/gpu_metrics.md", "gpu-metrics-config", "../gpumetrics", "Config", gpumetrics.Default()},
	{"../SECURITY.md", "connlimit", "../connlimit", "Config", connlimit.Default()},
	{"../SECURITY.md", "hostguard", "../hostguard", "Config", hostguard.Default()},
	{"../docs/vastauth.md", "vastauth", "../vastauth", "Config", vastauth.Default()},
	{"../docs/logstream.md", "logstream-config", "../logstream", "Config", logstream.Default()},
	{"../docs/vastauth.md", "vastauth-secrets", "../vastauth", "SecretSource", vastauth.Default().SecretSource},
	{"../docs/boot.md", "instancecert", "../instancecert", "Config", instancecert.Default()},
	{"../docs/boot.md", "bootstatus", "../bootstatus", "Config", bootstatus.Default()},
}

func TestConfigDocsMatchDeclarations(t *testing.T) {
	for _, c := range configDocs {
		table, err := confdecl.DocTable(c.dir, c.typ, c.def)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		raw, err := os.ReadFile(c.doc)
		if err != nil {
			t.Fatal(err)
		}
		want, err := confdecl.ReplaceBetween(string(raw), c.name, table)
		if err != nil {
			t.Errorf("%s: %v", c.doc, err)
			continue
		}
		if want == string(raw) {
			continue
		}
		if *updateGolden {
			if err := os.WriteFile(c.doc, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s: the %q table differs from %s.%s; run go test ./caddymodules -run ConfigDocs -update", c.doc, c.name, c.dir, c.typ)
	}
}
