package portalcmd

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/exposure"
)

func init() { Register(exposureCommand) }

func exposureCommand() *cobra.Command {
	var dir, procDir string
	cmd := &cobra.Command{
		Use:   "exposure [--allowlist DIR]",
		Short: "List listeners that bypass the portal's authentication",
		Long: `Lists every TCP socket listening on a non-loopback address (0.0.0.0, ::,
or a specific one) that is neither the portal's (caddy's) nor allowed by
the allowlist: an app bound there is reachable through the instance's
port mapping with no authentication. Bind apps to 127.0.0.1 and let the
portal proxy them, or allow the port in a fragment of the allowlist
directory (EXPOSURE_ALLOWLIST_DIR, default
/opt/instance-tools/tests/exposure-allowlist, the reference's format:
"<port|env:VAR>/tcp <class> <note>").

One line per listener; exit status 1 when there is one, 0 when none.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			allow, err := exposure.LoadAllowlist(dir)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "error: allowlist:", err)
				return err
			}
			found, err := exposure.Scan(procDir, allow, os.Getenv)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "error:", err)
				return err
			}
			out := cmd.OutOrStdout()
			if len(found) == 0 {
				fmt.Fprintln(out, "no listener bypasses the portal")
				return nil
			}
			for _, e := range found {
				fmt.Fprintln(out, e)
			}
			os.Exit(1)
			return nil
		},
	}
	def := os.Getenv(exposure.AllowlistDirEnv)
	if def == "" {
		def = exposure.DefaultAllowlistDir
	}
	cmd.Flags().StringVar(&dir, "allowlist", def, "the allowlist directory (*.conf)")
	cmd.Flags().StringVar(&procDir, "proc", exposure.DefaultProcDir, "the proc filesystem to read")
	return cmd
}
