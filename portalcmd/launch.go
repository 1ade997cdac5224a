package portalcmd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/portalconfig"
)

// maxLaunchFile bounds what is read of /.launch: a few lines of shell.
const maxLaunchFile = 1 << 20

func init() { Register(launchCommand) }

func launchCommand() *cobra.Command {
	var (
		launchFile, write, print string
		force                    bool
	)
	cmd := &cobra.Command{
		Use:   "launch [--launch-file /.launch] [--print mode,portal-config] [--write /etc/portal.yaml]",
		Short: "Apply the launch-mode rules to PORTAL_CONFIG",
		Long: `Decides the launch mode from the launch file (/.launch): none is
"entrypoint", one naming jupyter is "jupyter" (the platform runs Jupyter on
port 8080 with TLS) unless JUPYTER_OVERRIDE=true, any other is "ssh". Then
adjusts PORTAL_CONFIG the way the reference image's boot does:

  - Jupyter entries go when VAST_TCP_PORT_8080 is unset, and in ssh mode
    unless JUPYTER_OVERRIDE=true;
  - entrypoint mode with 8080 mapped adds Jupyter (8080 -> JUPYTER_PORT,
    18080) and Jupyter Terminal (/terminals/1), unless FORCE_JUPYTER=false;
  - jupyter mode turns the proxy on 8080 into a link, with an https:// scheme;
  - when the image runs Jupyter, a Jupyter link on 8080 becomes the proxy.

PORTAL_JUPYTER_PORT moves 8080 (tests). The rules are idempotent. What they
changed is printed on stderr, one line each.

--print takes a comma-separated list of mode, portal-config and https-links
and prints each on its own line. --write writes portal.yaml from the result
(atomically, with "scheme: https" on the https links) unless the file
exists; --force replaces it.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := runLaunch(cmd.OutOrStdout(), cmd.ErrOrStderr(), portalconfig.OSEnviron(), launchFile, print, write, force)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "error:", err)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&launchFile, "launch-file", portalconfig.DefaultLaunchFile, "the platform's launch file")
	cmd.Flags().StringVar(&print, "print", "", "comma-separated: mode, portal-config, https-links")
	cmd.Flags().StringVar(&write, "write", "", "portal.yaml to write when it does not exist")
	cmd.Flags().BoolVar(&force, "force", false, "with --write: replace an existing file")
	return cmd
}

// readLaunchFile returns the launch file's content and whether it exists.
func readLaunchFile(path string) (string, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLaunchFile))
	return string(b), true, err
}

func runLaunch(stdout, stderr io.Writer, env portalconfig.Environ, launchFile, print, write string, force bool) error {
	in, err := portalconfig.LaunchInputFromEnv(env)
	if err != nil {
		return err
	}
	in.LaunchFile, in.HasLaunchFile, err = readLaunchFile(launchFile)
	if err != nil {
		return fmt.Errorf("reading the launch file: %w", err)
	}
	l := portalconfig.ApplyLaunch(in)
	for _, c := range l.Changes {
		fmt.Fprintf(stderr, "launch mode %s: %s\n", l.Mode, c)
	}
	var lines []string
	for _, what := range strings.Split(print, ",") {
		switch strings.TrimSpace(what) {
		case "":
		case "mode":
			lines = append(lines, string(l.Mode))
		case "portal-config":
			lines = append(lines, l.PortalConfig)
		case "https-links":
			lines = append(lines, strings.Join(l.HTTPSLinks, ","))
		default:
			return fmt.Errorf("--print: unknown item %q (want mode, portal-config or https-links)", what)
		}
	}
	if write != "" {
		if err := writeLaunchYAML(stderr, l, write, force); err != nil {
			return err
		}
	}
	for _, line := range lines {
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// writeLaunchYAML writes portal.yaml unless it exists (an edited file, or
// one a provisioning script left, always wins) or force is set.
func writeLaunchYAML(stderr io.Writer, l portalconfig.Launch, path string, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		fmt.Fprintf(stderr, "using the existing %s\n", path)
		return nil
	}
	body, err := l.YAML()
	if err != nil {
		return err
	}
	if err := portalconfig.WriteFileAtomic(path, body); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	fmt.Fprintf(stderr, "wrote %s (launch mode %s)\n", path, l.Mode)
	return nil
}
