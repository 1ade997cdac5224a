package portalcmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/envhash"
)

func init() { Register(envHashCommand) }

func envHashCommand() *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:   "env-hash [--root /]",
		Short: "Print the hash of what made this image's Python environments",
		Long: `Prints 12 hex digits naming the OS release, the architecture, the
installed system libraries (lib*, *-dev, cuda, rocm packages) and each
/venv/<name>'s Python version and distributions. The image records it in
/.env_hash at build time; --sync-environment keeps the environments on the
volume under ${WORKSPACE}/.environment_sync/<hash>/, so an image with
different libraries never reuses them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), envhash.Compute(root))
			return err
		},
	}
	cmd.Flags().StringVar(&root, "root", "/", "the root to hash")
	return cmd
}
