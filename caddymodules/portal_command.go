package caddymodules

import (
	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/portalcmd"
)

// portalSubcommands lists the children of `caddy portal` that still live in
// this package; new subcommands register themselves in package portalcmd.
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
	for _, c := range portalSubcommands() {
		name := c.Name()
		portalcmd.Register(func() *cobra.Command {
			for _, c := range portalSubcommands() {
				if c.Name() == name {
					return c
				}
			}
			return nil
		})
	}
}
