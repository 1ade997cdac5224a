package caddymodules

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// portalSubcommands lists the children of `caddy portal`, each built by its
// own file's function. Add a new subcommand here.
func portalSubcommands() []*cobra.Command {
	return []*cobra.Command{
		appCommand(),
		certCommand(),
		checkCommand(),
		launchCommand(),
		logTeeCommand(),
		tokenCommand(),
		writeConfigCommand(),
	}
}

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "portal",
		Usage: "<subcommand> [args]",
		Short: "Instance Portal tools (config, token, logs)",
		Long: `
Tools for the Instance Portal built into this binary. Run
'caddy portal --help' for the list of subcommands.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(portalSubcommands()...)
			cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		},
	})
}
