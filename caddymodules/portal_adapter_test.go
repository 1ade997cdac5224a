package caddymodules

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

var updateGolden = flag.Bool("update", false, "rewrite the adapter golden files in testdata/adapt")

// goldenSep separates the sections of a golden file: environment, input
// portal.yaml, then the expected JSON (or "error: <substring>") and the
// expected warnings.
const goldenSep = "\n----------\n"

// TestAdaptGolden runs every testdata/adapt/*.txt scenario through the
// adapter. Sections: (1) environment lines KEY=VALUE, "#" comments, and an
// optional "now=RFC3339" for the certificate clock; (2) portal.yaml; (3) the
// expected Caddy JSON, or "error: <substring>"; (4) the expected warnings,
// one per line. Run with -update to rewrite sections 3 and 4.
func TestAdaptGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/adapt/*.txt")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(string(raw), goldenSep, 4)
			if len(parts) < 2 {
				t.Fatalf("%s: want at least env and yaml sections", file)
			}
			env, now := parseGoldenEnv(t, parts[0])
			out, warns, adaptErr := adaptWithEnv(t, []byte(parts[1]), env, now)

			var got string
			if adaptErr != nil {
				got = "error: " + adaptErr.Error()
			} else {
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, out, "", "\t"); err != nil {
					t.Fatal(err)
				}
				got = pretty.String()
				assertNoSecrets(t, out, env)
				assertLoads(t, out)
			}
			var warnLines []string
			for _, w := range warns {
				warnLines = append(warnLines, formatWarning(w))
			}
			gotWarns := strings.Join(warnLines, "\n")

			if *updateGolden {
				content := parts[0] + goldenSep + parts[1] + goldenSep + got + goldenSep + gotWarns + "\n"
				if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if len(parts) < 4 {
				t.Fatalf("%s: no expected output; run go test -run TestAdaptGolden -update", file)
			}
			want, wantWarns := strings.TrimSpace(parts[2]), strings.TrimSpace(parts[3])
			if strings.HasPrefix(want, "error: ") && adaptErr != nil {
				if !strings.Contains(got, strings.TrimPrefix(want, "error: ")) {
					t.Errorf("error = %q, want it to contain %q", got, want)
				}
			} else if got != want {
				t.Errorf("adapted JSON differs from %s (run with -update and review the diff):\n%s", file, firstDiff(got, want))
			}
			if gotWarns != wantWarns {
				t.Errorf("warnings:\n%s\nwant:\n%s", gotWarns, wantWarns)
			}
		})
	}
}

func parseGoldenEnv(t *testing.T, section string) (map[string]string, time.Time) {
	env := map[string]string{}
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, line := range strings.Split(section, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("bad env line %q", line)
		}
		if k == "now" {
			var err error
			if now, err = time.Parse(time.RFC3339, v); err != nil {
				t.Fatal(err)
			}
			continue
		}
		env[k] = v
	}
	return env, now
}

// adaptWithEnv runs the adapter with env as the whole environment.
func adaptWithEnv(t *testing.T, body []byte, env map[string]string, now time.Time) ([]byte, []caddyconfig.Warning, error) {
	t.Helper()
	return adaptPortal(body, "portal.yaml", env, now)
}

func formatWarning(w caddyconfig.Warning) string {
	s := w.File
	if w.Line > 0 {
		s += ":" + strconv.Itoa(w.Line)
	}
	if w.Directive != "" {
		s += ": " + w.Directive
	}
	return s + ": " + w.Message
}

// assertNoSecrets fails when a secret's value from the environment appears
// in the adapted JSON (the admin API would serve it to any local user).
func assertNoSecrets(t *testing.T, out []byte, env map[string]string) {
	t.Helper()
	for _, k := range []string{"WEB_PASSWORD", "OPEN_BUTTON_TOKEN", "CF_TUNNEL_TOKEN"} {
		if v := env[k]; v != "" && bytes.Contains(out, []byte(v)) {
			t.Errorf("the value of %s appears in the adapted JSON", k)
		}
	}
}

// assertLoads checks that every module in the output is known to this
// binary and the config decodes (Validate without starting anything).
func assertLoads(t *testing.T, out []byte) {
	t.Helper()
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("output is not a Caddy config: %v", err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Errorf("caddy.Validate: %v", err)
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + gl + "\nwant: " + wl
		}
	}
	return "(equal)"
}

func TestLastGoodFallback(t *testing.T) {
	t.Parallel()
	var logged []string
	f := &lastGoodFallback{byFile: map[string]*lastGoodEntry{}, logError: func(file string, err error) {
		logged = append(logged, file+": "+err.Error())
	}}
	boom := errors.New("boom")
	if out, _, err := f.apply("a.yaml", nil, nil, boom); err != boom || out != nil {
		t.Fatal("nothing remembered yet: the error must surface")
	}
	if out, _, err := f.apply("a.yaml", []byte(`{"good":1}`), nil, nil); err != nil || string(out) != `{"good":1}` {
		t.Fatalf("a good adaptation passes through: %q %v", out, err)
	}
	out, warns, err := f.apply("a.yaml", nil, nil, boom)
	if err != nil || string(out) != `{"good":1}` || len(warns) != 1 || warns[0].Message != editNotApplied+": boom" || len(logged) != 1 {
		t.Fatalf("fallback: %q %v %v, logged %v", out, warns, err, logged)
	}
	if _, warns, _ := f.apply("a.yaml", nil, nil, boom); len(warns) != 0 || len(logged) != 1 {
		t.Errorf("the same error must be reported once, got %v and %v", warns, logged)
	}
	if _, _, err := f.apply("b.yaml", nil, nil, boom); err != boom {
		t.Error("another file has no last good config")
	}
	if out, _, _ := f.apply("a.yaml", []byte(`{"good":2}`), nil, nil); string(out) != `{"good":2}` {
		t.Error("the next good edit applies")
	}
	if _, warns, _ := f.apply("a.yaml", nil, nil, boom); len(warns) != 1 {
		t.Error("after a good edit the same error is news again")
	}
}
