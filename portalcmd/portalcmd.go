// Package portalcmd is `caddy portal …`: the command-line face of the
// Instance Portal, registered with Caddy's command table. Each subcommand
// lives in its own file and adds itself with Register from an init
// function, so that adding one touches no shared list. The work behind a
// subcommand lives in a plain package (portalconfig, instancecert, logtee,
// …); a file here only parses flags and prints.
package portalcmd

import (
	"sort"
	"sync"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

var (
	mu       sync.Mutex
	builders []func() *cobra.Command
)

// Register adds a subcommand of `caddy portal`. build is called each time
// the command tree is made (once per process in the binary, once per test
// that asks for Subcommands).
func Register(build func() *cobra.Command) {
	mu.Lock()
	defer mu.Unlock()
	builders = append(builders, build)
}

// Subcommands returns a fresh copy of every registered subcommand, sorted by
// name so that help output does not depend on init order.
func Subcommands() []*cobra.Command {
	mu.Lock()
	defer mu.Unlock()
	cmds := make([]*cobra.Command, 0, len(builders))
	for _, b := range builders {
		cmds = append(cmds, b())
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	return cmds
}

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "portal",
		Usage: "<subcommand> [args]",
		Short: "Instance Portal tools (config, token, logs, provisioning)",
		Long: `
Tools for the Instance Portal built into this binary. Run
'caddy portal --help' for the list of subcommands.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(Subcommands()...)
			cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		},
	})
}
