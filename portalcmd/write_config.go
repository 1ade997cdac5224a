package portalcmd

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/portalconfig"
)

func init() { Register(writeConfigCommand) }

func writeConfigCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "write-config [--config /etc/portal.yaml]",
		Short: "Write portal.yaml from PORTAL_CONFIG, atomically",
		Long: `Parses PORTAL_CONFIG ("hostname:external:internal:open_path:name|…") and
writes it as portal.yaml: a temporary file in the same directory renamed over
the target, so readers never see half a file. A symlink's target is written,
an existing file keeps its mode, a new one gets 0644. Nothing is written when
PORTAL_CONFIG is empty or does not parse.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := portalconfig.ParsePortalConfig(os.Getenv(portalconfig.PortalConfigVar))
			if err == nil && len(cfg.Apps) == 0 {
				err = errors.New("PORTAL_CONFIG is empty: nothing to write")
			}
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				return err
			}
			data, err := cfg.MarshalYAML()
			if err != nil {
				return err
			}
			if err := portalconfig.WriteFileAtomic(path, data); err != nil {
				return fmt.Errorf("writing %s: %w", path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s to %s\n", countOf(len(cfg.Apps), "app"), path)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", portalconfig.DefaultPortalYAML, "portal.yaml to write")
	return cmd
}
