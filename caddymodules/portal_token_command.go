package caddymodules

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/vastauth"
)

func tokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Print the token that opens every app (?token=…)",
		Long: `Prints the token the portal accepts: OPEN_BUTTON_TOKEN, else WEB_PASSWORD,
else the token generated under PORTAL_STATE_DIR (default /var/lib/portal),
generating and saving it (mode 0600) if there is none yet, exactly as the
running portal does. Use it on the instance, e.g. over SSH:

    curl -H "Authorization: Bearer $(caddy portal token)" http://localhost:1111/

Only the token is printed, followed by a newline.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printToken(cmd.OutOrStdout(), portalconfig.OSEnviron())
		},
	}
}

// printToken writes the effective token; lookup reads the environment.
func printToken(w io.Writer, env portalconfig.Environ) error {
	tok, err := effectiveToken(env)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, tok)
	return err
}

// effectiveToken mirrors what the adapter configures vastauth with: the
// environment's secrets, else the persisted generated token.
func effectiveToken(env portalconfig.Environ) (string, error) {
	for _, k := range []string{"OPEN_BUTTON_TOKEN", "WEB_PASSWORD"} {
		if v := env[k]; v != "" {
			return v, nil
		}
	}
	dir := env.Get("PORTAL_STATE_DIR", portalconfig.DefaultStateDir)
	tok, _, err := vastauth.LoadOrCreateToken(dir)
	if err != nil {
		return "", fmt.Errorf("neither OPEN_BUTTON_TOKEN nor WEB_PASSWORD is set, and %w", err)
	}
	return tok, nil
}
