package portalconfig

import (
	"strings"
	"testing"
)

// FuzzParseYAML: any input either errors or yields apps that, once
// validated, have in-range ports, a non-empty host, a path starting with /,
// and re-marshal to YAML that parses back to the same apps.
func FuzzParseYAML(f *testing.F) {
	f.Add([]byte("applications:\n  Jupyter:\n    hostname: localhost\n    external_port: 8080\n    internal_port: 18080\n    open_path: /\n    name: Jupyter\n"))
	f.Add([]byte("applications: {a: {hostname: h, external_port: 1, internal_port: 2}}"))
	f.Add([]byte("applications:\n  x: [1, 2]\n"))
	f.Add([]byte("- 1\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		cfg, _, err := ParseYAML(body, "fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if cfg.Validate() != nil {
			return
		}
		checkApps(t, cfg)
	})
}

// FuzzParsePortalConfig: same properties for the PORTAL_CONFIG string, and
// every non-empty entry yields exactly one app.
func FuzzParsePortalConfig(f *testing.F) {
	f.Add("localhost:1111:11111:/:Instance Portal|localhost:8080:18080:/:Jupyter")
	f.Add("localhost:7860:17860:/ui:Web: UI|")
	f.Add("a:b:c")
	f.Add("|||")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := ParsePortalConfig(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), PortalConfigVar) {
				t.Fatalf("error does not name PORTAL_CONFIG: %v", err)
			}
			return
		}
		entries := 0
		for _, e := range strings.Split(s, "|") {
			if strings.TrimSpace(e) != "" {
				entries++
			}
		}
		if len(cfg.Apps) != entries {
			t.Fatalf("%d entries gave %d apps", entries, len(cfg.Apps))
		}
		if cfg.Validate() != nil {
			return
		}
		checkApps(t, cfg)
	})
}

func checkApps(t *testing.T, cfg *Config) {
	t.Helper()
	for _, a := range cfg.Apps {
		if a.ExternalPort < 1 || a.ExternalPort > 65535 || a.InternalPort < 1 || a.InternalPort > 65535 {
			t.Fatalf("port out of range: %+v", a)
		}
		if a.Hostname == "" || !strings.HasPrefix(a.OpenPath, "/") || a.Name == "" {
			t.Fatalf("validated app incomplete: %+v", a)
		}
	}
	data, err := cfg.MarshalYAML()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	back, _, err := ParseYAML(data, "again.yaml")
	if err != nil {
		t.Fatalf("re-parse of our own output: %v\n%s", err, data)
	}
	if len(back.Apps) != len(cfg.Apps) {
		t.Fatalf("round trip lost apps: %d → %d\n%s", len(cfg.Apps), len(back.Apps), data)
	}
	for i, a := range cfg.Apps {
		b := back.Apps[i]
		if a.Name != b.Name || a.Hostname != b.Hostname || a.ExternalPort != b.ExternalPort || a.InternalPort != b.InternalPort || a.OpenPath != b.OpenPath {
			t.Fatalf("round trip changed app %d: %+v → %+v", i, a, b)
		}
	}
}
