// Package supervisor controls the programs of the instance through
// supervisord's XML-RPC interface on its unix socket: it lists them, starts,
// stops and restarts them, refuses to stop the protected ones, and reads the
// skip markers that the boot scripts leave for programs whose app is not
// configured. It never imports Caddy; caddymodules serves it over HTTP.
package supervisor

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

// Config says how to reach supervisord and what the portal may do to its
// programs.
type Config struct {
	// Socket is supervisord's unix socket (the file of its
	// [unix_http_server] section). Default: /var/run/supervisor.sock
	Socket string `json:"socket,omitempty"`
	// SkipDir holds the markers that the boot scripts' exit_portal.sh
	// writes for a program whose app is not in portal.yaml: a file named
	// after the program, holding the app's name.
	// Default: /tmp/supervisor-skip
	SkipDir string `json:"skip_dir,omitempty"`
	// Unstoppable lists programs that may not be stopped or restarted from
	// the portal, besides caddy, which never may (stopping it would take
	// down the portal that asked). Names compare ignoring case.
	// Default: none
	Unstoppable []string `json:"unstoppable,omitempty"`
	// CallTimeout bounds a call that waits for nothing (listing,
	// describing a program). Default: 5s
	CallTimeout confdecl.Duration `json:"call_timeout,omitempty"`
	// WaitTimeout bounds a start, stop or restart, which waits for the
	// program's state to change. supervisord kills a program that does not
	// stop within its stopwaitsecs; a program slower than this bound is
	// reported as still changing, and supervisord carries on.
	// Default: 30s
	WaitTimeout confdecl.Duration `json:"wait_timeout,omitempty"`
}

// Default is the configuration used for every zero field.
func Default() Config {
	return Config{
		Socket:      "/var/run/supervisor.sock",
		SkipDir:     "/tmp/supervisor-skip",
		CallTimeout: confdecl.Duration(5 * time.Second),
		WaitTimeout: confdecl.Duration(30 * time.Second),
	}
}

// AlwaysProtected is the program that is never stopped from the portal:
// the portal itself.
const AlwaysProtected = "caddy"

// Check checks the configuration; each message names the JSON field.
// Zero values are valid: they mean the default.
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var check confdecl.Check
	if c.Socket != "" && !filepath.IsAbs(c.Socket) {
		check.Failf("socket", "%q: want an absolute path", c.Socket)
	}
	if c.SkipDir != "" && !filepath.IsAbs(c.SkipDir) {
		check.Failf("skip_dir", "%q: want an absolute path", c.SkipDir)
	}
	for i, name := range c.Unstoppable {
		if strings.TrimSpace(name) == "" || strings.ContainsAny(name, "/\x00") {
			check.Failf("unstoppable", "entry %d %q: want a program name", i+1, name)
		}
	}
	if c.CallTimeout != 0 {
		check.DurationAtLeast("call_timeout", c.CallTimeout, confdecl.Duration(100*time.Millisecond))
	}
	if c.WaitTimeout != 0 {
		check.DurationAtLeast("wait_timeout", c.WaitTimeout, confdecl.Duration(time.Second))
	}
	return check.Err()
}

// protectedReason says why a program may not be stopped, or "" when it may.
func (c Config) protectedReason(name string) string {
	if strings.EqualFold(name, AlwaysProtected) {
		return "caddy serves this portal: stopping it from here would cut off the page that asked"
	}
	for _, u := range c.Unstoppable {
		if strings.EqualFold(strings.TrimSpace(u), name) {
			return fmt.Sprintf("%s is listed as unstoppable (PORTAL_UNSTOPPABLE)", name)
		}
	}
	return ""
}
