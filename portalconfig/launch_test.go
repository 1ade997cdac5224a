package portalconfig

import (
	"slices"
	"strings"
	"testing"
)

// The PORTAL_CONFIG strings of the reference's templates.
const (
	refPortal   = "localhost:1111:11111:/:Instance Portal"
	refJupyter  = "localhost:8080:18080:/:Jupyter"
	refTerminal = "localhost:8080:8080:/terminals/1:Jupyter Terminal"
	refSync     = "localhost:8384:18384:/:Syncthing"
	// seedDefault is the image's default: Jupyter as a link on 8080.
	seedDefault = "localhost:1111:11111:/:Instance Portal|localhost:8080:8080:/:Jupyter|localhost:8384:18384:/:Syncthing"
)

func join(entries ...string) string { return strings.Join(entries, "|") }

func TestApplyLaunch(t *testing.T) {
	full := join(refPortal, refJupyter, refTerminal, refSync)
	tests := []struct {
		name      string
		in        LaunchInput
		wantMode  LaunchMode
		want      string
		wantHTTPS []string
		wantNote  string // substring of one of the changes; "" means no change
	}{
		{
			name:     "entrypoint, 8080 mapped: the reference's full config is kept",
			in:       LaunchInput{PortalConfig: full, JupyterPortMapped: true, ForceJupyter: true},
			wantMode: LaunchEntrypoint, want: full,
		},
		{
			name:     "entrypoint, 8080 not mapped: Jupyter and its terminal removed",
			in:       LaunchInput{PortalConfig: full, ForceJupyter: true},
			wantMode: LaunchEntrypoint, want: join(refPortal, refSync),
			wantNote: "removed Jupyter, Jupyter Terminal: port 8080 is not mapped (no VAST_TCP_PORT_8080)",
		},
		{
			name:     "entrypoint, mapped, no Jupyter: both added back",
			in:       LaunchInput{PortalConfig: join(refPortal, refSync), JupyterPortMapped: true, ForceJupyter: true},
			wantMode: LaunchEntrypoint, want: join(refPortal, refSync, refJupyter, refTerminal),
			wantNote: "added Jupyter and Jupyter Terminal on port 8080",
		},
		{
			name:     "entrypoint, FORCE_JUPYTER=false: not added",
			in:       LaunchInput{PortalConfig: join(refPortal, refSync), JupyterPortMapped: true},
			wantMode: LaunchEntrypoint, want: join(refPortal, refSync),
		},
		{
			name:     "entrypoint, empty PORTAL_CONFIG, mapped: Jupyter alone, as the reference does",
			in:       LaunchInput{JupyterPortMapped: true, ForceJupyter: true},
			wantMode: LaunchEntrypoint, want: join(refJupyter, refTerminal),
			wantNote: "added Jupyter",
		},
		{
			name:     "entrypoint, the seed's default: the Jupyter link becomes the proxy to the image's Jupyter",
			in:       LaunchInput{PortalConfig: seedDefault, JupyterPortMapped: true, ForceJupyter: true},
			wantMode: LaunchEntrypoint, want: join(refPortal, refJupyter, refSync),
			wantNote: "Jupyter: the image runs Jupyter on 18080 in entrypoint mode: port 8080 proxies to it",
		},
		{
			name:     "entrypoint, the seed's default, 8080 not mapped",
			in:       LaunchInput{PortalConfig: seedDefault, ForceJupyter: true},
			wantMode: LaunchEntrypoint, want: join(refPortal, refSync),
			wantNote: "removed Jupyter",
		},
		{
			name:     "jupyter: the proxy becomes a link, both links https",
			in:       LaunchInput{PortalConfig: full, HasLaunchFile: true, LaunchFile: "#!/bin/bash\njupyter-notebook --ip=0.0.0.0 --port=8080 --certfile=/etc/instance.crt\n", JupyterPortMapped: true, ForceJupyter: true},
			wantMode: LaunchJupyter, want: join(refPortal, "localhost:8080:8080:/:Jupyter", refTerminal, refSync),
			wantHTTPS: []string{"Jupyter", "Jupyter Terminal"},
			wantNote:  "Jupyter: port 8080 is served by the platform's Jupyter (Jupyter launch mode): a link, not a proxy",
		},
		{
			name:     "jupyter, the seed's default: already a link, now https",
			in:       LaunchInput{PortalConfig: seedDefault, HasLaunchFile: true, LaunchFile: "JUPYTER", JupyterPortMapped: true, ForceJupyter: true},
			wantMode: LaunchJupyter, want: seedDefault, wantHTTPS: []string{"Jupyter"},
		},
		{
			name:     "jupyter, 8080 not mapped: removed",
			in:       LaunchInput{PortalConfig: full, HasLaunchFile: true, LaunchFile: "jupyter", ForceJupyter: true},
			wantMode: LaunchJupyter, want: join(refPortal, refSync), wantNote: "removed",
		},
		{
			name:     "jupyter with JUPYTER_OVERRIDE: the image runs Jupyter, config kept",
			in:       LaunchInput{PortalConfig: full, HasLaunchFile: true, LaunchFile: "jupyter", JupyterPortMapped: true, JupyterOverride: true, ForceJupyter: true},
			wantMode: LaunchSSH, want: full,
		},
		{
			name:     "ssh: Jupyter removed although 8080 is mapped",
			in:       LaunchInput{PortalConfig: full, HasLaunchFile: true, LaunchFile: "#!/bin/bash\nsshd\n", JupyterPortMapped: true, ForceJupyter: true},
			wantMode: LaunchSSH, want: join(refPortal, refSync),
			wantNote: "removed Jupyter, Jupyter Terminal: SSH/Args launch mode",
		},
		{
			name:     "an empty /.launch is a launch file (Args mode)",
			in:       LaunchInput{PortalConfig: full, HasLaunchFile: true, JupyterPortMapped: true, ForceJupyter: true},
			wantMode: LaunchSSH, want: join(refPortal, refSync), wantNote: "removed",
		},
		{
			name:     "ssh with JUPYTER_OVERRIDE: kept, and the seed's link becomes the proxy",
			in:       LaunchInput{PortalConfig: seedDefault, HasLaunchFile: true, LaunchFile: "ssh", JupyterPortMapped: true, JupyterOverride: true, ForceJupyter: true},
			wantMode: LaunchSSH, want: join(refPortal, refJupyter, refSync), wantNote: "in ssh mode: port 8080 proxies to it",
		},
		{
			name:     "ssh: a JupyterLab entry on another port goes too (the reference matches the name)",
			in:       LaunchInput{PortalConfig: join(refPortal, "localhost:8888:18888:/lab:JupyterLab"), HasLaunchFile: true, LaunchFile: "ssh", JupyterPortMapped: true},
			wantMode: LaunchSSH, want: refPortal, wantNote: "removed JupyterLab",
		},
		{
			name:     "an unparsable entry is kept as it is; the adapter reports it",
			in:       LaunchInput{PortalConfig: join(refPortal, "localhost:80a:1:/:Broken", refJupyter), HasLaunchFile: true, LaunchFile: "jupyter", JupyterPortMapped: true},
			wantMode: LaunchJupyter, want: join(refPortal, "localhost:80a:1:/:Broken", "localhost:8080:8080:/:Jupyter"),
			wantHTTPS: []string{"Jupyter"}, wantNote: "a link, not a proxy",
		},
		{
			name:     "an unnamed entry keeps having no name",
			in:       LaunchInput{PortalConfig: "localhost:8080:18080:/", HasLaunchFile: true, LaunchFile: "jupyter", JupyterPortMapped: true},
			wantMode: LaunchJupyter, want: "localhost:8080:8080:/", wantHTTPS: []string{"entry 1"},
			wantNote: `"localhost:8080:18080:/": port 8080 is served`,
		},
		{
			name: "moved ports (PORTAL_JUPYTER_PORT, JUPYTER_PORT)",
			in: LaunchInput{PortalConfig: refPortal, JupyterPortMapped: true, ForceJupyter: true,
				JupyterPort: 9000, JupyterInternalPort: 19000},
			wantMode: LaunchEntrypoint,
			want:     join(refPortal, "localhost:9000:19000:/:Jupyter", "localhost:9000:9000:/terminals/1:Jupyter Terminal"),
			wantNote: "on port 9000",
		},
		{
			name:     "blank entries are dropped",
			in:       LaunchInput{PortalConfig: " " + refPortal + " || ", ForceJupyter: true},
			wantMode: LaunchEntrypoint, want: refPortal,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ApplyLaunch(tt.in)
			if got.Mode != tt.wantMode {
				t.Errorf("mode = %s, want %s", got.Mode, tt.wantMode)
			}
			if got.PortalConfig != tt.want {
				t.Errorf("PORTAL_CONFIG =\n  %s\nwant\n  %s", got.PortalConfig, tt.want)
			}
			if !slices.Equal(got.HTTPSLinks, tt.wantHTTPS) {
				t.Errorf("HTTPS links = %q, want %q", got.HTTPSLinks, tt.wantHTTPS)
			}
			notes := strings.Join(got.Changes, "\n")
			if tt.wantNote == "" && notes != "" {
				t.Errorf("changes = %q, want none", notes)
			}
			if tt.wantNote != "" && !strings.Contains(notes, tt.wantNote) {
				t.Errorf("changes = %q, want one containing %q", notes, tt.wantNote)
			}
			again := ApplyLaunch(withConfig(tt.in, got.PortalConfig))
			if again.PortalConfig != got.PortalConfig || !slices.Equal(again.HTTPSLinks, got.HTTPSLinks) || len(again.Changes) != 0 {
				t.Errorf("not idempotent: second pass gave %q %q, changes %q", again.PortalConfig, again.HTTPSLinks, again.Changes)
			}
		})
	}
}

func withConfig(in LaunchInput, portalConfig string) LaunchInput {
	in.PortalConfig = portalConfig
	return in
}

func TestLaunchInputFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    LaunchInput
		wantErr string
	}{
		{
			name: "defaults",
			env:  map[string]string{},
			want: LaunchInput{ForceJupyter: true, JupyterPort: 8080, JupyterInternalPort: 18080},
		},
		{
			name: "everything set",
			env: map[string]string{"PORTAL_CONFIG": " a:1:2:/:A ", "VAST_TCP_PORT_8080": "40080", "JUPYTER_OVERRIDE": "TRUE",
				"FORCE_JUPYTER": "False", "JUPYTER_PORT": "18888"},
			want: LaunchInput{PortalConfig: "a:1:2:/:A", JupyterPortMapped: true, JupyterOverride: true, JupyterPort: 8080, JupyterInternalPort: 18888},
		},
		{
			name: "the mapping is read for the moved Jupyter port",
			env:  map[string]string{"PORTAL_JUPYTER_PORT": "9000", "VAST_TCP_PORT_8080": "1", "VAST_TCP_PORT_9000": ""},
			want: LaunchInput{ForceJupyter: true, JupyterPort: 9000, JupyterInternalPort: 18080},
		},
		{name: "bad port", env: map[string]string{"JUPYTER_PORT": "eighty"}, wantErr: `JUPYTER_PORT="eighty": not a number`},
		{name: "port out of range", env: map[string]string{"PORTAL_JUPYTER_PORT": "0"}, wantErr: `PORTAL_JUPYTER_PORT="0": port 0 outside 1-65535`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LaunchInputFromEnv(Environ(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestLaunchYAML: portal.yaml from the adjusted config carries the https
// scheme on the Jupyter links and parses back to the same apps.
func TestLaunchYAML(t *testing.T) {
	l := ApplyLaunch(LaunchInput{PortalConfig: seedDefault, HasLaunchFile: true, LaunchFile: "jupyter", JupyterPortMapped: true})
	body, err := l.YAML()
	if err != nil {
		t.Fatal(err)
	}
	want := `applications:
  Instance Portal:
    hostname: localhost
    external_port: 1111
    internal_port: 11111
    open_path: /
    name: Instance Portal
  Jupyter:
    hostname: localhost
    external_port: 8080
    internal_port: 8080
    open_path: /
    name: Jupyter
    scheme: https
  Syncthing:
    hostname: localhost
    external_port: 8384
    internal_port: 18384
    open_path: /
    name: Syncthing
`
	if string(body) != want {
		t.Fatalf("portal.yaml:\n%s\nwant:\n%s", body, want)
	}
	cfg, _, err := ParseYAML(body, "portal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Apps) != 3 || cfg.Apps[1].InternalPort != 8080 {
		t.Fatalf("parsed back: %+v", cfg.Apps)
	}

	// Without HTTPS links the output is MarshalYAML's.
	plain := ApplyLaunch(LaunchInput{PortalConfig: seedDefault, JupyterPortMapped: true, ForceJupyter: true})
	body, err = plain.YAML()
	if err != nil || strings.Contains(string(body), "scheme") || !strings.Contains(string(body), "internal_port: 18080") {
		t.Fatalf("entrypoint portal.yaml (%v):\n%s", err, body)
	}

	if _, err := (Launch{}).YAML(); err == nil || !strings.Contains(err.Error(), "PORTAL_CONFIG is empty") {
		t.Fatalf("empty config: %v", err)
	}
	if _, err := (Launch{PortalConfig: "localhost:1:x:/:A"}).YAML(); err == nil || !strings.Contains(err.Error(), `internal_port: "x": not a number`) {
		t.Fatalf("bad config: %v", err)
	}
}

// FuzzApplyLaunch: for any input the rules are idempotent, keep every
// non-Jupyter entry in order and unchanged (except a proxy on the Jupyter
// port turned into a link in Jupyter mode), add at most two entries, and
// never emit an empty entry.
func FuzzApplyLaunch(f *testing.F) {
	f.Add(join(refPortal, refJupyter, refTerminal, refSync), "jupyter", true, true, false, true)
	f.Add(seedDefault, "", false, true, false, true)
	f.Add(seedDefault, "ssh", true, true, true, false)
	f.Add("localhost:8080:18080:/|x|localhost:8080:1:/:Other", "JuPyTeR", true, false, false, true)
	f.Fuzz(func(t *testing.T, cfg, launch string, hasLaunch, mapped, override, force bool) {
		in := LaunchInput{PortalConfig: cfg, LaunchFile: launch, HasLaunchFile: hasLaunch,
			JupyterPortMapped: mapped, JupyterOverride: override, ForceJupyter: force}
		got := ApplyLaunch(in)
		again := ApplyLaunch(withConfig(in, got.PortalConfig))
		if again.PortalConfig != got.PortalConfig || !slices.Equal(again.HTTPSLinks, got.HTTPSLinks) || again.Mode != got.Mode {
			t.Fatalf("not idempotent:\n%q\n%q", got.PortalConfig, again.PortalConfig)
		}
		var out []string
		if got.PortalConfig != "" {
			out = strings.Split(got.PortalConfig, "|")
		}
		var kept []string
		for _, e := range out {
			if strings.TrimSpace(e) == "" {
				t.Fatalf("empty entry in %q", got.PortalConfig)
			}
			if !strings.Contains(strings.ToLower(e), "jupyter") && !strings.Contains(e, ":8080:") {
				kept = append(kept, e)
			}
		}
		var in2 []string
		for _, e := range strings.Split(cfg, "|") {
			e = strings.TrimSpace(e)
			if e != "" && !strings.Contains(strings.ToLower(e), "jupyter") && !strings.Contains(e, ":8080:") {
				in2 = append(in2, e)
			}
		}
		if !slices.Equal(kept, in2) {
			t.Fatalf("other entries changed:\n%q\n%q", in2, kept)
		}
		n := 0
		for _, e := range strings.Split(cfg, "|") {
			if strings.TrimSpace(e) != "" {
				n++
			}
		}
		if len(out) > n+2 {
			t.Fatalf("%d entries became %d", n, len(out))
		}
	})
}
