package caddymodules

import (
	"sort"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// portalSubcommands are the children of `caddy portal`. Each module file adds
// its own in init (write-config, check, token, log-tee, …).
var portalSubcommands []func() *cobra.Command

// registerPortalSubcommand adds `caddy portal <name>`. Call only from init.
func registerPortalSubcommand(build func() *cobra.Command) {
	portalSubcommands = append(portalSubcommands, build)
}

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "portal",
		Usage: "<subcommand> [args]",
		Short: "Instance Portal tools (config, token, logs)",
		Long: `
Tools for the Instance Portal built into this binary. Run
'caddy portal --help' for the list of subcommands.`,
		// Cobra's root builder runs after every init, so the list is complete here.
		CobraFunc: func(cmd *cobra.Command) {
			subs := make([]*cobra.Command, 0, len(portalSubcommands))
			for _, build := range portalSubcommands {
				subs = append(subs, build())
			}
			sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
			cmd.AddCommand(subs...)
			cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		},
	})
}
