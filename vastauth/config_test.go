package vastauth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{FailureLimit: 5}.WithDefaults()
	if c.FailureLimit != 5 || c.Username != "vastai" || c.CookieName != "_auth_token" || c.StateDir != "/var/lib/portal" ||
		c.SessionTTL.Std() != 7*24*time.Hour || c.FailureWindow.Std() != time.Minute || c.MaxTrackedClients != 10000 || c.Realm != "Instance Portal" {
		t.Errorf("WithDefaults = %+v", c)
	}
	if err := Default().Check(); err != nil {
		t.Errorf("Default().Check() = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"username empty", func(c *Config) { c.Username = "" }, `username: "": must be non-empty, without ':' or line breaks`},
		{"username colon", func(c *Config) { c.Username = "a:b" }, `username: "a:b": must be non-empty, without ':' or line breaks`},
		{"username newline", func(c *Config) { c.Username = "a\nb" }, `username: "a\nb": must be non-empty, without ':' or line breaks`},
		{"cookie name", func(c *Config) { c.CookieName = "bad name;" }, `cookie_name: "bad name;": not a cookie name (RFC 6265 token characters only)`},
		{"cookie name placeholder", func(c *Config) { c.CookieName = "{env.X}_auth_token" }, `cookie_name: "{env.X}_auth_token": not a cookie name (RFC 6265 token characters only)`},
		{"realm quote", func(c *Config) { c.Realm = `x"y` }, `realm: "x\"y": no quotes, backslashes or control characters`},
		{"realm control", func(c *Config) { c.Realm = "x\x01" }, `realm: "x\x01": no quotes, backslashes or control characters`},
		{"state dir", func(c *Config) { c.StateDir = "" }, `state_dir: must not be empty`},
		{"ttl", func(c *Config) { c.SessionTTL = confdecl.Duration(time.Millisecond) }, `session_ttl: must be at least 1s, got 1ms`},
		{"limit", func(c *Config) { c.FailureLimit = -1 }, `failure_limit: must be at least 1, got -1`},
		{"window", func(c *Config) { c.FailureWindow = confdecl.Duration(-time.Second) }, `failure_window: must be at least 1s, got -1s`},
		{"max clients", func(c *Config) { c.MaxTrackedClients = -3 }, `max_tracked_clients: must be at least 1, got -3`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mod(&c)
			err := c.Check()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
	// Every failure is reported at once.
	c := Default()
	c.Username, c.FailureLimit = "", -1
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "username") || !strings.Contains(err.Error(), "failure_limit") {
		t.Errorf("two bad fields: %v", err)
	}
}

// Issue 12: one normalisation rule, shared by the module and
// `caddy portal token`: surrounding white space is not part of a secret.
func TestNormalizeSecret(t *testing.T) {
	for in, want := range map[string]string{
		"pw":             "pw",
		" pw ":           "pw",
		"pw\n":           "pw",
		"\tpw\r\n":       "pw",
		"p w":            "p w",
		"   ":            "",
		"":               "",
		"\u00a0pw\u00a0": "pw",
	} {
		if got := normalizeSecret(in); got != want {
			t.Errorf("normalizeSecret(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolveSecrets(t *testing.T) {
	env := map[string]string{"{env.A}": " a-secret\n", "{env.B}": "", "{env.C}": "  "}
	expand := func(s string) string {
		if v, ok := env[s]; ok {
			return v
		}
		return s
	}
	r, err := SecretSource{Secrets: []string{"{env.A}", "{env.B}", "{env.C}", "literal"}}.ResolveSecrets(expand)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.Values, ",") != "a-secret,literal" || strings.Join(r.From, ",") != "{env.A},literal" || r.Generated {
		t.Errorf("resolved %+v", r)
	}

	dir := t.TempDir()
	r, err = SecretSource{Secrets: []string{"{env.B}"}, StateDir: dir}.ResolveSecrets(expand)
	if err != nil || len(r.Values) != 1 || !r.Generated || r.From[0] != "token file "+TokenPath(dir) {
		t.Fatalf("generated: %+v, %v", r, err)
	}
	again, err := SecretSource{StateDir: dir}.ResolveSecrets(expand)
	if err != nil || again.Values[0] != r.Values[0] || again.Generated {
		t.Errorf("second resolution: %+v, %v", again, err)
	}
}

// Issue 13: a state directory the user cannot write (caddy validate as a
// non-root user against /var/lib/portal) names the setting to change.
func TestStateDirErrorNamesTheSetting(t *testing.T) {
	err := stateDirError("/var/lib/portal", &fs.PathError{Op: "mkdir", Path: "/var/lib/portal", Err: fs.ErrPermission})
	for _, want := range []string{`state_dir "/var/lib/portal"`, "permission denied", "PORTAL_STATE_DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: lacks %q", err, want)
		}
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("the cause is lost")
	}
	other := stateDirError("/x", errors.New("disk on fire"))
	if strings.Contains(other.Error(), "PORTAL_STATE_DIR") || !strings.Contains(other.Error(), `state_dir "/x": disk on fire`) {
		t.Errorf("unrelated error: %v", other)
	}
	// The real thing, where the test can provoke it: a read-only directory
	// (root ignores modes, so skip there).
	if os.Geteuid() == 0 {
		return
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	_, err = SecretSource{StateDir: filepath.Join(ro, "state")}.ResolveSecrets(func(s string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "PORTAL_STATE_DIR") {
		t.Errorf("unwritable state dir: %v", err)
	}
}
