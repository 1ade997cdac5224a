package vastauth

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

// PortalSecrets are the secrets the Instance Portal accepts, as
// placeholders: the portal_yaml adapter writes them for the handler and the
// access-log filter, and `caddy portal token` prints the first that is set,
// so the three agree.
var PortalSecrets = []string{"{env.OPEN_BUTTON_TOKEN}", "{env.WEB_PASSWORD}"}

// UnguessableSecrets are the configured secrets no person chose: the
// console's Open button token (256 bits). With the generated token, they
// are the only secrets a `?token=` is checked against while its client is
// over the failure limit, so the owner's Open link still works behind an
// address a guesser shares, and a guessable WEB_PASSWORD is never let
// through then. A value shorter than MinUnguessableLen is not trusted as one.
var UnguessableSecrets = []string{"{env.OPEN_BUTTON_TOKEN}"}

// MinUnguessableLen is the shortest value of an UnguessableSecrets entry
// taken as unguessable: 32 characters (the generated token has 43).
const MinUnguessableLen = 32

// PortalSecretSource is where the portal's secrets come from, with the
// state directory stateDir (PORTAL_STATE_DIR).
func PortalSecretSource(stateDir string) SecretSource {
	return SecretSource{Secrets: append([]string(nil), PortalSecrets...), StateDir: stateDir}
}

// SecretSource says where the accepted secrets come from. The handler's
// Config and the access-log filter (which redacts the same secrets) both
// embed it, so the two cannot be configured apart.
type SecretSource struct {
	// Secrets accepted as credentials. Each is usually a placeholder such
	// as {env.WEB_PASSWORD}, resolved when the module is provisioned, so the
	// running config (which the admin API serves to every local user) never
	// holds a secret. Values are normalised by normalizeSecret; empty ones
	// are ignored. When none remains, the token generated once under
	// state_dir is used. Default: none.
	Secrets []string `json:"secrets,omitempty"`

	// StateDir holds what must outlive a restart: the generated token
	// (auth_token), the per-instance session salt (session_salt) and the
	// revoked sessions (revoked_sessions.json), all mode 0600. Created
	// (0700) if missing. The portal_yaml adapter takes it from
	// PORTAL_STATE_DIR. Default: /var/lib/portal.
	StateDir string `json:"state_dir,omitempty"`
}

// Config is the vastauth handler's configuration: its JSON is the module's
// JSON, and each field is also the Caddyfile option of the same name.
type Config struct {
	SecretSource

	// Username for Basic logins. Placeholders are resolved.
	// Default: vastai.
	Username string `json:"username,omitempty"`

	// CookieName is the session cookie (an RFC 6265 token). Placeholders
	// are resolved. The portal_yaml adapter writes
	// ${VAST_CONTAINERLABEL}_auth_token, the reference image's name.
	// Default: _auth_token.
	CookieName string `json:"cookie_name,omitempty"`

	// Realm is the text of the browser's login prompt and the login page
	// (no quotes, backslashes or control characters). Default: Instance Portal.
	Realm string `json:"realm,omitempty"`

	// SessionTTL is the lifetime of a session cookie (its Max-Age), at
	// least 1s. Default: 7d.
	SessionTTL confdecl.Duration `json:"session_ttl,omitempty"`

	// FailureLimit is how many wrong credentials one client (an IPv4
	// address or an IPv6 /64) may present within failure_window. Past it,
	// every guessable credential from that client (Basic, Bearer, ?token=,
	// a raw secret as cookie) is answered 429 without being checked until
	// the window has passed; a signed session cookie still works.
	// Default: 20.
	FailureLimit int `json:"failure_limit,omitempty"`

	// FailureWindow is the sliding window of failure_limit, at least 1s.
	// Default: 1m.
	FailureWindow confdecl.Duration `json:"failure_window,omitempty"`

	// MaxTrackedClients bounds the memory of the failure counters (about
	// 100 bytes each). Default: 10000.
	MaxTrackedClients int `json:"max_tracked_clients,omitempty"`

	// StripOnly turns the handler into a filter for ports served without
	// authentication (AUTH_EXCLUDE): nothing is checked and every request
	// passes, but our credentials (the token and portal_handoff
	// parameters, the session cookie, an Authorization header carrying a
	// secret) are removed first, so the app behind cannot collect a login
	// that opens every other port. Default: none.
	StripOnly bool `json:"strip_only,omitempty"`
}

// Default is the configuration of a bare `vastauth`.
func Default() Config {
	return Config{
		SecretSource:      SecretSource{StateDir: "/var/lib/portal"},
		Username:          "vastai",
		CookieName:        "_auth_token",
		Realm:             "Instance Portal",
		SessionTTL:        confdecl.Duration(7 * 24 * time.Hour),
		FailureLimit:      20,
		FailureWindow:     confdecl.Duration(time.Minute),
		MaxTrackedClients: 10000,
	}
}

// WithDefaults is c with every zero field set from Default().
func (c Config) WithDefaults() Config {
	confdecl.FillDefaults(&c, Default())
	return c
}

// Check checks a configuration whose placeholders are resolved and whose
// defaults are filled. Every message names the JSON field.
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var ck confdecl.Check
	if c.Username == "" || strings.ContainsAny(c.Username, ":\r\n") {
		ck.Failf("username", "%q: must be non-empty, without ':' or line breaks", c.Username)
	}
	if !validCookieName(c.CookieName) {
		ck.Failf("cookie_name", "%q: not a cookie name (RFC 6265 token characters only)", c.CookieName)
	}
	for _, r := range c.Realm {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			ck.Failf("realm", "%q: no quotes, backslashes or control characters", c.Realm)
			break
		}
	}
	if c.StateDir == "" {
		ck.Failf("state_dir", "must not be empty")
	}
	ck.DurationAtLeast("session_ttl", c.SessionTTL, confdecl.Duration(time.Second))
	ck.AtLeast("failure_limit", int64(c.FailureLimit), 1)
	ck.DurationAtLeast("failure_window", c.FailureWindow, confdecl.Duration(time.Second))
	ck.AtLeast("max_tracked_clients", int64(c.MaxTrackedClients), 1)
	return ck.Err()
}

// validCookieName: an RFC 6265 cookie-name is an RFC 2616 token.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// normalizeSecret is the one rule that turns a configured value (an
// environment variable, a Caddyfile argument, the token file) into the
// secret that is accepted: surrounding white space (spaces, tabs, line
// breaks) is removed, since it is invisible where secrets are set and is
// lost when one is copied. The module, `caddy portal token` and the token
// file all go through it, so what the command prints is what the module
// accepts.
func normalizeSecret(v string) string { return strings.TrimSpace(v) }

// ResolvedSecrets are the secrets in effect and where they came from.
type ResolvedSecrets struct {
	// Values are the normalised, non-empty secrets.
	Values []string
	// From names their source without revealing them: the configured
	// entries that were non-empty (e.g. "{env.WEB_PASSWORD}"), or the
	// token file.
	From []string
	// Generated is set when the token was generated just now.
	Generated bool
	// Unguessable are the Values no person chose: the generated token, or
	// those of UnguessableSecrets at least MinUnguessableLen long.
	Unguessable []string
}

// ResolveSecrets expands each configured secret with expand (the caller's
// placeholder replacer), normalises it and drops the empty ones; with none
// left, it loads (or generates once) the token under StateDir. An error
// never contains a secret.
func (s SecretSource) ResolveSecrets(expand func(string) string) (ResolvedSecrets, error) {
	return s.resolve(expand, true)
}

// CheckSecrets is ResolveSecrets for `caddy validate`, which must leave no
// file behind: without a token file, it checks that one could be written
// and returns a token made for this call only.
func (s SecretSource) CheckSecrets(expand func(string) string) (ResolvedSecrets, error) {
	return s.resolve(expand, false)
}

func (s SecretSource) resolve(expand func(string) string, write bool) (ResolvedSecrets, error) {
	var r ResolvedSecrets
	for _, spec := range s.Secrets {
		if v := normalizeSecret(expand(spec)); v != "" {
			r.Values = append(r.Values, v)
			r.From = append(r.From, spec)
			if len(v) >= MinUnguessableLen && slices.Contains(UnguessableSecrets, spec) {
				r.Unguessable = append(r.Unguessable, v)
			}
		}
	}
	if len(r.Values) > 0 {
		return r, nil
	}
	tok, created, err := loadOrCreateStateFile(s.StateDir, TokenFileName, "token", write)
	if err != nil {
		return r, fmt.Errorf("no secret is set, and the generated token is unavailable: %w", stateDirError(s.StateDir, err))
	}
	r.Values, r.From, r.Generated = []string{tok}, []string{"token file " + TokenPath(s.StateDir)}, created
	r.Unguessable = r.Values
	return r, nil
}

// stateDirError wraps a failure to use the state directory. When the cause
// is a permission problem (a non-root user running `caddy validate` against
// the default /var/lib/portal, a read-only file system), it says which
// setting to change, rather than leaving a bare "permission denied".
func stateDirError(dir string, err error) error {
	if isPermission(err) {
		return fmt.Errorf("state_dir %q: %w; point state_dir at a directory this user can write "+
			"(the portal takes it from PORTAL_STATE_DIR, e.g. PORTAL_STATE_DIR=$HOME/.local/state/portal)", dir, err)
	}
	return fmt.Errorf("state_dir %q: %w", dir, err)
}
