package portalcmd

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/portalconfig"
)

func init() { Register(appCommand) }

func appCommand() *cobra.Command {
	var path, print string
	cmd := &cobra.Command{
		Use:   "app NAME [--config /etc/portal.yaml] [--print internal_port]",
		Short: "Is an app in portal.yaml? (for supervisor scripts)",
		Long: `Looks NAME up in portal.yaml (the file only: scripts wait for it) by key or
display name in any case, exactly first, else as part of a name, as the
reference's exit_portal.sh does. The file is parsed, not validated: another
entry's mistake does not decide whether this app is wanted. Exits 0 when
found, 1 when not, 2 when the file is missing, empty or does not parse (the
error on stderr).

--print prints one field of the app found: name, hostname, external_port,
internal_port or open_path.`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.Flags().StringVarP(&path, "config", "c", portalconfig.DefaultPortalYAML, "portal.yaml to read")
	cmd.Flags().StringVar(&print, "print", "", "a field to print")
	cmd.Run = func(cmd *cobra.Command, args []string) {
		// caddy's main turns every error into status 1; 1 means "not
		// configured" here, so the codes are set directly.
		if code := runApp(cmd.OutOrStdout(), cmd.ErrOrStderr(), path, args[0], print); code != 0 {
			os.Exit(code)
		}
	}
	return cmd
}

func runApp(stdout, stderr io.Writer, path, name, print string) int {
	// Only the file is parsed, not validated: whether this app is wanted
	// does not depend on another entry being right (caddy reports that).
	body, err := os.ReadFile(path)
	var cfg *portalconfig.Config
	switch {
	case err != nil:
	case len(strings.TrimSpace(string(body))) == 0:
		err = fmt.Errorf("%s is empty", path)
	default:
		if cfg, _, err = portalconfig.ParseYAML(body, path); err == nil && len(cfg.Apps) == 0 {
			err = fmt.Errorf("%s has no applications", path)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 2
	}
	app, ok := cfg.FindLike(name)
	if !ok {
		return 1
	}
	if app.Name == "" {
		app.Name = app.Key
	}
	field := map[string]string{
		"name": app.Name, "hostname": app.Hostname, "open_path": app.OpenPath,
		"external_port": strconv.Itoa(app.ExternalPort), "internal_port": strconv.Itoa(app.InternalPort),
	}
	if print != "" {
		v, ok := field[print]
		if !ok {
			fmt.Fprintf(stderr, "error: --print: unknown field %q (want name, hostname, external_port, internal_port or open_path)\n", print)
			return 2
		}
		fmt.Fprintln(stdout, v)
	}
	return 0
}
