package portalcmd

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/vastauth"
)

func init() { Register(tokenCommand) }

func tokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Print the token that opens every app (?token=…)",
		Long: `Prints the token the running portal accepts: OPEN_BUTTON_TOKEN, else
WEB_PASSWORD (surrounding white space removed, as the portal does), else the
token generated under the portal's state directory.

The state directory is the running portal's: it is read from Caddy's admin
API (PORTAL_ADMIN_LISTEN, default 127.0.0.1:2019), so the token printed is
the one the portal serving now accepts, whatever PORTAL_STATE_DIR this shell
has (make run keeps its state under ./.run/state). When no portal answers
there, PORTAL_STATE_DIR (default /var/lib/portal) is used, and a token is
generated and saved there (mode 0600) if there is none yet, as a portal
started with this environment would do; that is said on stderr.

Use it on the instance, e.g. over SSH:

    curl -H "Authorization: Bearer $(caddy portal token)" http://localhost:1111/

Only the token is printed on stdout, followed by a newline.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := portalconfig.OSEnviron()
			settings, _ := portalconfig.SettingsFromEnv(env)
			if dir, ok := runningStateDir(settings.AdminListen); ok {
				env = maps.Clone(env)
				env["PORTAL_STATE_DIR"] = dir
			}
			return printToken(cmd.OutOrStdout(), cmd.ErrOrStderr(), env)
		},
	}
}

// printToken writes the effective token for the environment env, and a
// note on notes when it had to generate one.
func printToken(w, notes io.Writer, env portalconfig.Environ) error {
	tok, generated, err := effectiveToken(env)
	if err != nil {
		return err
	}
	if generated != "" {
		fmt.Fprintf(notes, "note: no portal answered and no token was saved yet: generated one in %s; a portal started with PORTAL_STATE_DIR=%s accepts it\n",
			generated, filepath.Dir(generated))
	}
	_, err = fmt.Fprintln(w, tok)
	return err
}

// effectiveToken resolves the portal's secrets as the adapter configures
// vastauth with them (vastauth.PortalSecretSource, the same placeholders and
// state directory) and through the same rule (vastauth.SecretSource.
// ResolveSecrets: normalised, empty ones skipped, else the generated
// token), and returns the first, with the token file's path when it was
// generated now.
func effectiveToken(env portalconfig.Environ) (tok, generated string, err error) {
	// Only the state directory matters here; a bad value elsewhere in the
	// environment is the adapter's to report.
	settings, _ := portalconfig.SettingsFromEnv(env)
	secrets, err := vastauth.PortalSecretSource(settings.StateDir).ResolveSecrets(envExpander(env))
	if err != nil {
		return "", "", fmt.Errorf("OPEN_BUTTON_TOKEN and WEB_PASSWORD are unset or blank: %w", err)
	}
	if secrets.Generated {
		generated = vastauth.TokenPath(settings.StateDir)
	}
	return secrets.Values[0], generated, nil
}

// runningStateDir asks the running portal, through Caddy's admin API at
// admin, for the state directory its vastauth handlers use. ok is false
// when nothing answers there (or the admin API is off) or no handler says.
func runningStateDir(admin string) (dir string, ok bool) {
	if admin == "" || admin == "off" {
		return "", false
	}
	client := &http.Client{Timeout: 2 * time.Second}
	res, err := client.Get("http://" + admin + "/config/apps/http/servers")
	if err != nil {
		return "", false
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", false
	}
	var servers any
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<20)).Decode(&servers); err != nil {
		return "", false
	}
	return findStateDir(servers, 0)
}

// findStateDir walks a Caddy JSON config for the first vastauth handler's
// state_dir (bounded in depth: the config is another program's answer).
func findStateDir(v any, depth int) (string, bool) {
	if depth > 64 {
		return "", false
	}
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "vastauth" {
			if d, ok := v["state_dir"].(string); ok && d != "" {
				return d, true
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if d, ok := findStateDir(v[k], depth+1); ok {
				return d, true
			}
		}
	case []any:
		for _, e := range v {
			if d, ok := findStateDir(e, depth+1); ok {
				return d, true
			}
		}
	}
	return "", false
}

// envExpander resolves {env.NAME} placeholders from env, as caddy.NewReplacer
// does from the process environment when the module is provisioned.
func envExpander(env portalconfig.Environ) func(string) string {
	repl := caddy.NewEmptyReplacer()
	repl.Map(func(key string) (any, bool) {
		if name, ok := strings.CutPrefix(key, "env."); ok {
			return env[name], true
		}
		return nil, false
	})
	return func(s string) string { return repl.ReplaceAll(s, "") }
}
