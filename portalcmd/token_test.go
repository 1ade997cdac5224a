package portalcmd

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/vastauth"
)

// TestTokenCommand: OPEN_BUTTON_TOKEN, else WEB_PASSWORD (blank ones
// skipped), else the generated token, saved and printed again the same.
// That the handler accepts what is printed is held by caddymodules'
// TestPortalTokenCommand.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	env := func(kv ...string) portalconfig.Environ {
		m := portalconfig.Environ{"PORTAL_STATE_DIR": dir}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	printed := func(l portalconfig.Environ) string {
		t.Helper()
		var b strings.Builder
		if err := printToken(&b, io.Discard, l); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got := printed(env("OPEN_BUTTON_TOKEN", "obt", "WEB_PASSWORD", "pw")); got != "obt\n" {
		t.Errorf("with both set: %q", got)
	}
	if got := printed(env("OPEN_BUTTON_TOKEN", "", "WEB_PASSWORD", "pw")); got != "pw\n" {
		t.Errorf("with WEB_PASSWORD only: %q", got)
	}
	if got := printed(env("OPEN_BUTTON_TOKEN", " \t", "WEB_PASSWORD", "pw")); got != "pw\n" {
		t.Errorf("with a blank OPEN_BUTTON_TOKEN: %q", got)
	}
	generated := printed(env())
	if _, err := os.Stat(vastauth.TokenPath(dir)); err != nil {
		t.Fatalf("token not persisted: %v", err)
	}
	if again := printed(env()); again != generated {
		t.Errorf("second run printed %q, first %q", again, generated)
	}
}

// TestTokenCommandSaysWhenItGenerates: a token generated because no portal
// answered is said on stderr, with the directory a portal must use to
// accept it (issue 21: it was created quietly).
func TestTokenCommandSaysWhenItGenerates(t *testing.T) {
	dir := t.TempDir()
	var out, notes strings.Builder
	if err := printToken(&out, &notes, portalconfig.Environ{"PORTAL_STATE_DIR": dir}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(notes.String(), "generated one in "+vastauth.TokenPath(dir)) || !strings.Contains(notes.String(), "PORTAL_STATE_DIR="+dir) {
		t.Errorf("note %q", notes.String())
	}
	notes.Reset()
	if err := printToken(&out, &notes, portalconfig.Environ{"PORTAL_STATE_DIR": dir}); err != nil || notes.Len() != 0 {
		t.Errorf("an existing token is noted: %q %v", notes.String(), err)
	}
}

// TestFindStateDir reads the running config's vastauth state_dir.
func TestFindStateDir(t *testing.T) {
	for _, c := range []struct {
		json, want string
		ok         bool
	}{
		{`{"srv0":{"routes":[{"handle":[{"handler":"subroute","routes":[{"handle":[{"handler":"vastauth","state_dir":"/run/st"}]}]}]}]}}`, "/run/st", true},
		{`{"srv0":{"routes":[{"handle":[{"handler":"reverse_proxy"}]}]}}`, "", false},
		{`{"a":{"handler":"vastauth"}}`, "", false},
		{`[]`, "", false},
	} {
		var v any
		if err := json.Unmarshal([]byte(c.json), &v); err != nil {
			t.Fatal(err)
		}
		if got, ok := findStateDir(v, 0); got != c.want || ok != c.ok {
			t.Errorf("%s: %q %v", c.json, got, ok)
		}
	}
	if _, ok := runningStateDir("off"); ok {
		t.Error("admin off must not be asked")
	}
}
