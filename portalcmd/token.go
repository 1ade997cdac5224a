package portalcmd

import (
	"fmt"
	"io"
	"strings"

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
		Long: `Prints the token the portal accepts: OPEN_BUTTON_TOKEN, else WEB_PASSWORD
(surrounding white space removed, as the portal does), else the token
generated under PORTAL_STATE_DIR (default /var/lib/portal), generating and
saving it (mode 0600) if there is none yet, exactly as the running portal
does. Use it on the instance, e.g. over SSH:

    curl -H "Authorization: Bearer $(caddy portal token)" http://localhost:1111/

Only the token is printed, followed by a newline.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printToken(cmd.OutOrStdout(), portalconfig.OSEnviron())
		},
	}
}

// printToken writes the effective token for the environment env.
func printToken(w io.Writer, env portalconfig.Environ) error {
	tok, err := effectiveToken(env)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, tok)
	return err
}

// effectiveToken resolves the portal's secrets as the adapter configures
// vastauth with them (vastauth.PortalSecretSource, the same placeholders and
// state directory) and through the same rule (vastauth.SecretSource.
// ResolveSecrets: normalised, empty ones skipped, else the generated
// token), and returns the first.
func effectiveToken(env portalconfig.Environ) (string, error) {
	// Only the state directory matters here; a bad value elsewhere in the
	// environment is the adapter's to report.
	settings, _ := portalconfig.SettingsFromEnv(env)
	secrets, err := vastauth.PortalSecretSource(settings.StateDir).ResolveSecrets(envExpander(env))
	if err != nil {
		return "", fmt.Errorf("OPEN_BUTTON_TOKEN and WEB_PASSWORD are unset or blank: %w", err)
	}
	return secrets.Values[0], nil
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
