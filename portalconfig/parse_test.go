package portalconfig

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestParseYAML(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantApps  []App
		wantWarns []string // substrings, in order
		wantErr   string   // substring; empty means success
	}{
		{
			name: "reference example",
			in: `applications:
  Jupyter:
    hostname: localhost
    external_port: 8080
    internal_port: 18080
    open_path: /
    name: Jupyter
`,
			wantApps: []App{{Key: "Jupyter", Name: "Jupyter", Hostname: "localhost", ExternalPort: 8080, InternalPort: 18080, OpenPath: "/", Line: 2}},
		},
		{
			name:     "quoted ports and defaults left for Validate",
			in:       "applications:\n  api:\n    hostname: 127.0.0.1\n    external_port: '7860'\n    internal_port: \"17860\"\n",
			wantApps: []App{{Key: "api", Hostname: "127.0.0.1", ExternalPort: 7860, InternalPort: 17860, Line: 2}},
		},
		{name: "empty", in: "", wantApps: nil},
		{name: "comments only", in: "# nothing here\n", wantApps: nil},
		{name: "no applications key", in: "other: 1\n", wantApps: nil, wantWarns: []string{`1: unknown top-level key "other"`}},
		{name: "null applications", in: "applications:\n", wantApps: nil},
		{
			name:      "unknown app key is a warning",
			in:        "applications:\n  A:\n    hostname: localhost\n    external_port: 1\n    internal_port: 2\n    color: red\n",
			wantApps:  []App{{Key: "A", Hostname: "localhost", ExternalPort: 1, InternalPort: 2, Line: 2}},
			wantWarns: []string{`portal.yaml:6: app "A": unknown key "color" ignored`},
		},
		{
			name:      "second applications key",
			in:        "applications:\n  A:\n    hostname: h\n    external_port: 1\n    internal_port: 2\napplications:\n  B:\n    hostname: h\n    external_port: 3\n    internal_port: 4\n",
			wantApps:  []App{{Key: "B", Hostname: "h", ExternalPort: 3, InternalPort: 4, Line: 7}},
			wantWarns: []string{"portal.yaml:6: a second `applications` key replaces the first (line 1)"},
		},
		{
			name:     "scheme of a link-only app",
			in:       "applications:\n  Jupyter:\n    hostname: localhost\n    external_port: 8080\n    internal_port: 8080\n    scheme: HTTPS\n",
			wantApps: []App{{Key: "Jupyter", Hostname: "localhost", ExternalPort: 8080, InternalPort: 8080, Scheme: "https", Line: 2}},
		},
		{
			name:      "scheme of a proxied app is ignored",
			in:        "applications:\n  A:\n    hostname: h\n    external_port: 1\n    internal_port: 2\n    scheme: https\n",
			wantApps:  []App{{Key: "A", Hostname: "h", ExternalPort: 1, InternalPort: 2, Line: 2}},
			wantWarns: []string{`portal.yaml:2: app "A": scheme ignored: it describes a link-only app`},
		},
		{name: "bad scheme", in: "applications:\n  A:\n    hostname: h\n    external_port: 1\n    internal_port: 1\n    scheme: ftp\n", wantErr: `portal.yaml:6: app "A": scheme: "ftp": want http or https`},
		{name: "syntax error has line", in: "applications:\n  A: [\n", wantErr: "portal.yaml: YAML syntax: line"},
		{name: "top level list", in: "- a\n", wantErr: "portal.yaml:1: top level must be a mapping"},
		{name: "applications list", in: "applications:\n  - a\n", wantErr: "applications: must be a mapping"},
		{name: "app not a mapping", in: "applications:\n  A: 5\n", wantErr: `app "A": settings must be a mapping`},
		{name: "port not a number", in: "applications:\n  A:\n    hostname: h\n    external_port: http\n    internal_port: 2\n", wantErr: `portal.yaml:4: app "A": external_port: "http": not a number`},
		{name: "port out of range", in: "applications:\n  A:\n    hostname: h\n    external_port: 1\n    internal_port: 70000\n", wantErr: `portal.yaml:5: app "A": internal_port: "70000": port 70000 outside 1-65535`},
		{name: "port zero", in: "applications:\n  A:\n    hostname: h\n    external_port: 0\n    internal_port: 1\n", wantErr: "external_port: \"0\": port 0 outside"},
		{name: "missing hostname", in: "applications:\n  A:\n    external_port: 1\n    internal_port: 2\n", wantErr: `portal.yaml:2: app "A": hostname: missing`},
		{name: "missing internal port", in: "applications:\n  A:\n    hostname: h\n    external_port: 1\n", wantErr: `app "A": internal_port: missing`},
		{name: "field given twice", in: "applications:\n  A:\n    hostname: h\n    hostname: i\n    external_port: 1\n    internal_port: 2\n", wantErr: `hostname: given twice`},
		{name: "field is a list", in: "applications:\n  A:\n    hostname: [h]\n    external_port: 1\n    internal_port: 2\n", wantErr: `hostname: must be a single value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warns, err := ParseYAML([]byte(tt.in), "portal.yaml")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(cfg.Apps) != len(tt.wantApps) {
				t.Fatalf("apps = %+v, want %+v", cfg.Apps, tt.wantApps)
			}
			for i := range cfg.Apps {
				if cfg.Apps[i] != tt.wantApps[i] {
					t.Errorf("app %d = %+v, want %+v", i, cfg.Apps[i], tt.wantApps[i])
				}
			}
			if len(warns) != len(tt.wantWarns) {
				t.Fatalf("warnings = %v, want %d", warns, len(tt.wantWarns))
			}
			for i, w := range warns {
				if !strings.Contains(warningText(w), tt.wantWarns[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warningText(w), tt.wantWarns[i])
				}
			}
		})
	}
}

func TestParsePortalConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []App
		wantErr string
	}{
		{
			name: "design example",
			in:   "localhost:1111:11111:/:Instance Portal|localhost:8080:18080:/:Jupyter",
			want: []App{
				{Key: "Instance Portal", Name: "Instance Portal", Hostname: "localhost", ExternalPort: 1111, InternalPort: 11111, OpenPath: "/"},
				{Key: "Jupyter", Name: "Jupyter", Hostname: "localhost", ExternalPort: 8080, InternalPort: 18080, OpenPath: "/"},
			},
		},
		{
			name: "name with colons and trailing bar",
			in:   " localhost:7860:17860:/ui:Web UI: v2 (beta) |",
			want: []App{{Key: "Web UI: v2 (beta)", Name: "Web UI: v2 (beta)", Hostname: "localhost", ExternalPort: 7860, InternalPort: 17860, OpenPath: "/ui"}},
		},
		{name: "no name", in: "localhost:1:2:/", want: []App{{Key: "entry 1", Hostname: "localhost", ExternalPort: 1, InternalPort: 2, OpenPath: "/"}}},
		{name: "empty", in: "", want: nil},
		{name: "too few fields", in: "a|localhost:1:2:/:x", wantErr: `PORTAL_CONFIG: app "entry 1": "a": want hostname:external_port:internal_port:open_path:name`},
		{name: "bad port in second entry", in: "localhost:1:2:/:a|localhost:x:2:/:b", wantErr: `PORTAL_CONFIG: app "entry 2": external_port: "x": not a number`},
		{name: "internal out of range", in: "localhost:1:65536:/:a", wantErr: `internal_port: "65536": port 65536 outside 1-65535`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParsePortalConfig(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Apps) != len(tt.want) {
				t.Fatalf("apps = %+v, want %+v", cfg.Apps, tt.want)
			}
			for i := range tt.want {
				if cfg.Apps[i] != tt.want[i] {
					t.Errorf("app %d = %+v, want %+v", i, cfg.Apps[i], tt.want[i])
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	app := func(key string, ext, in int) App {
		return App{Key: key, Hostname: "localhost", ExternalPort: ext, InternalPort: in}
	}
	tests := []struct {
		name    string
		apps    []App
		wantErr string
	}{
		{name: "fine", apps: []App{app("a", 1111, 11111), app("b", 8080, 18080), app("link", 8384, 8384)}},
		{name: "same port same target is fine", apps: []App{app("a", 8080, 18080), app("b", 8080, 18080)}},
		{name: "same port two targets", apps: []App{app("a", 8080, 18080), app("b", 8080, 18081)}, wantErr: `app "b": external_port: 8080 is already proxied to localhost:18080 by app "a"`},
		{name: "link only into a proxied port (Jupyter Terminal)", apps: []App{app("Jupyter", 8080, 18080), app("Jupyter Terminal", 8080, 8080)}},
		{name: "link only on another app's port", apps: []App{app("a", 8080, 18080), app("b", 9090, 9090), app("c", 8080, 9090)}, wantErr: `app "c": external_port: 8080 is already proxied to localhost:18080 by app "a"`},
		{name: "proxied app targeting a portal port", apps: []App{app("a", 8080, 18080), app("b", 9090, 8080)}, wantErr: `app "b": internal_port: 8080 is the external port of app "a", which the portal listens on`},
		{name: "internal port is another external", apps: []App{app("a", 8080, 18080), app("b", 9090, 8080)}, wantErr: `app "b": internal_port: 8080 is the external port`},
		{name: "remote host may reuse the number", apps: []App{app("a", 8080, 18080), {Key: "b", Hostname: "10.0.0.5", ExternalPort: 9090, InternalPort: 8080}}},
		{name: "duplicate key", apps: []App{app("a", 1, 2), app("a", 3, 4)}, wantErr: `app "a": defined twice`},
		{name: "bad open_path", apps: []App{{Key: "a", Hostname: "h", ExternalPort: 1, InternalPort: 2, OpenPath: "tree"}}, wantErr: `open_path: "tree" must be a path starting with /`},
		{name: "hostname with slash", apps: []App{{Key: "a", Hostname: "http://x", ExternalPort: 1, InternalPort: 2}}, wantErr: `hostname: "http://x" is not a host name`},
		{name: "missing hostname", apps: []App{{Key: "entry 1", ExternalPort: 1, InternalPort: 2}}, wantErr: `app "entry 1": hostname: missing`},
		{name: "bidi control in a name", apps: []App{{Key: "a", Name: "evil\u202egnp.exe", Hostname: "localhost", ExternalPort: 1, InternalPort: 2}}, wantErr: `app "a": name: "evil\u202egnp.exe" has invalid UTF-8 or control characters`},
		// Issue 20: the key too, and zero-width characters.
		{name: "bidi control in the key", apps: []App{{Key: "evil\u202egnp", Name: "fine", Hostname: "localhost", ExternalPort: 1, InternalPort: 2}}, wantErr: `key: "evil\u202egnp" has invalid UTF-8 or control characters`},
		{name: "zero-width space in a name", apps: []App{{Key: "a", Name: "Instance\u200bPortal", Hostname: "localhost", ExternalPort: 1, InternalPort: 2}}, wantErr: `name: "Instance\u200bPortal" has invalid UTF-8 or control characters`},
		// Issue 20: a second entry named "Instance Portal" got the front's secret.
		{name: "second portal entry", apps: []App{app("Instance Portal", 1111, 11111), {Key: "impostor", Name: "Instance Portal", Hostname: "localhost", ExternalPort: 8080, InternalPort: 18080}},
			wantErr: `app "impostor": name: "Instance Portal" is the portal's own entry, already defined by app "Instance Portal": rename this app`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Source: "portal.yaml", Apps: tt.apps}
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range c.Apps {
					if a.Name == "" || a.OpenPath != "/" || a.Scheme != "http" {
						t.Errorf("defaults not filled: %+v", a)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.App == "" {
				t.Errorf("want a *FieldError naming the app, got %T", err)
			}
		})
	}
}

func TestLoadFallsBackToPortalConfig(t *testing.T) {
	for _, body := range []string{"", "# empty\n", "applications:\n", "applications: {}\n"} {
		cfg, _, err := Load([]byte(body), "/etc/portal.yaml", "localhost:8080:18080:/:Jupyter")
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if cfg.Source != PortalConfigVar || len(cfg.Apps) != 1 || cfg.Apps[0].Name != "Jupyter" {
			t.Errorf("%q: got %+v", body, cfg)
		}
	}
	_, _, err := Load(nil, "/etc/portal.yaml", "")
	if !errors.Is(err, ErrNoConfig) || !strings.Contains(err.Error(), "/etc/portal.yaml") || !strings.Contains(err.Error(), "PORTAL_CONFIG") {
		t.Errorf("neither: err = %v", err)
	}
	// A file with apps wins over PORTAL_CONFIG, and a broken file is an
	// error, not a silent fallback.
	cfg, _, err := Load([]byte("applications:\n  A:\n    hostname: localhost\n    external_port: 1\n    internal_port: 2\n"), "p.yaml", "localhost:8080:18080:/:Jupyter")
	if err != nil || cfg.Apps[0].Key != "A" {
		t.Errorf("file should win: %v %+v", err, cfg)
	}
	if _, _, err := Load([]byte("applications: ["), "p.yaml", "localhost:8080:18080:/:Jupyter"); err == nil {
		t.Error("syntax error must not fall back")
	}
}

func TestMarshalYAMLRoundTrip(t *testing.T) {
	in, err := ParsePortalConfig("localhost:1111:11111:/:Instance Portal|127.0.0.1:8080:18080:/tree?x=1:Jupyter: Lab|localhost:8384:8384:/:Syncthing")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	data, err := in.MarshalYAML()
	if err != nil {
		t.Fatal(err)
	}
	out, warns, err := Load(data, "out.yaml", "")
	if err != nil || len(warns) > 0 {
		t.Fatalf("reparse: %v %v\n%s", err, warns, data)
	}
	for i := range in.Apps {
		a, b := in.Apps[i], out.Apps[i]
		if a.Name != b.Name || a.Hostname != b.Hostname || a.ExternalPort != b.ExternalPort || a.InternalPort != b.InternalPort || a.OpenPath != b.OpenPath {
			t.Errorf("app %d: %+v != %+v", i, a, b)
		}
	}
}

func TestParseYAMLAlias(t *testing.T) {
	cfg, _, err := ParseYAML([]byte("applications:\n  a: &x {hostname: h, external_port: 1, internal_port: 2}\n  b: *x\n"), "p.yaml")
	if err != nil || len(cfg.Apps) != 2 || cfg.Apps[1].Key != "b" || cfg.Apps[1].InternalPort != 2 {
		t.Fatalf("%v %+v", err, cfg)
	}
}

// warningText is a warning as the adapter's caller prints it
// (file:line: app "X": message).
func warningText(w Warning) string {
	s := w.Source
	if w.Line > 0 {
		s += ":" + strconv.Itoa(w.Line)
	}
	if w.App != "" {
		s += fmt.Sprintf(": app %q", w.App)
	}
	return s + ": " + w.Msg
}
