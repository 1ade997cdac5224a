package portalcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/portalconfig"
)

func init() { Register(checkCommand) }

func checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [--config /etc/portal.yaml] [--has NAME]",
		Short: "Validate portal.yaml and show what will be exposed",
		Long: `Validates portal.yaml (falling back to PORTAL_CONFIG, as the portal_yaml
adapter does) with the current environment, and prints each port the portal
will listen on. Exits 1 with the error on bad input.

With --has NAME it prints nothing and exits 0 when an app of that name (the
key or its display name, in any case) is configured, 1 when it is not, 2 when the
configuration is broken: supervisor wrapper scripts use it to decide whether
to start an app.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.Flags().StringP("config", "c", portalconfig.DefaultPortalYAML, "portal.yaml to check")
	cmd.Flags().String("has", "", "exit 0 if an app of this name is configured, 1 if not")
	cmd.Run = func(cmd *cobra.Command, _ []string) {
		// caddy's main maps every error to exit status 1 and logs it; --has
		// needs quiet 0/1/2, so the code is set here.
		path, _ := cmd.Flags().GetString("config")
		has, _ := cmd.Flags().GetString("has")
		if code := runCheck(cmd, path, has); code != 0 {
			os.Exit(code)
		}
	}
	return cmd
}

// runCheck is `caddy portal check`; it returns the exit status.
func runCheck(cmd *cobra.Command, path, has string) int {
	env := portalconfig.OSEnviron()
	body, err := os.ReadFile(path)
	missing := errors.Is(err, os.ErrNotExist)
	if err != nil && !missing {
		return failCheck(cmd, has, err)
	}
	if missing {
		// The adapter reads PORTAL_CONFIG when the file is empty, but
		// `caddy run --config` needs the file itself: say so, and how
		// to make it.
		if env.Get(portalconfig.PortalConfigVar, "") == "" {
			return failCheck(cmd, has, missingConfigError(path))
		}
		if has == "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: %s does not exist: checking PORTAL_CONFIG instead; %s writes it\n", path, writeConfigCommandLine(path))
		}
	}
	plan, warns, err := portalconfig.LoadPlan(body, path, env, time.Now())
	if err != nil {
		return failCheck(cmd, has, err)
	}
	if has != "" {
		if _, ok := plan.Config.Find(has); ok {
			return 0
		}
		return 1
	}
	// Each warning once, here: the plan's own (an unusable certificate…)
	// are among them.
	for _, w := range warns {
		loc := w.Source
		if w.Line > 0 {
			loc = fmt.Sprintf("%s:%d", loc, w.Line)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %s\n", loc, strings.TrimSpace(w.Msg))
	}
	printPlan(cmd.OutOrStdout(), plan)
	return 0
}

// missingConfigError says that the config file does not exist and how to
// write it from PORTAL_CONFIG.
func missingConfigError(path string) error {
	return fmt.Errorf("%s does not exist, and PORTAL_CONFIG is not set: write it with "+
		"PORTAL_CONFIG=\"hostname:external_port:internal_port:open_path:name|…\" %s, or by hand (README: portal.yaml)",
		path, writeConfigCommandLine(path))
}

// writeConfigCommandLine is the write-config command that writes path.
func writeConfigCommandLine(path string) string {
	if path == portalconfig.DefaultPortalYAML {
		return "caddy portal write-config"
	}
	return "caddy portal write-config --config " + path
}

// failCheck prints the error (cobra's own printing is silenced so that
// --has stays quiet) and picks the exit code.
func failCheck(cmd *cobra.Command, has string, err error) int {
	fmt.Fprintln(cmd.ErrOrStderr(), "error:", err)
	if has != "" {
		return 2
	}
	return 1
}

// printPlan writes a table of the ports the portal will serve. The plan's
// warnings are not repeated here: runCheck printed them.
func printPlan(w io.Writer, plan *portalconfig.Plan) {
	s := plan.Settings
	scheme := "http"
	if plan.TLS {
		scheme = "https"
	}
	fmt.Fprintf(w, "%s: %s, %s, auth %s\n", plan.Config.Source, countOf(len(plan.Config.Apps), "app"), scheme, onOff(s.EnableAuth))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTEN\tAPP\tTARGET\tAUTH\tPUBLIC")
	served := map[int]bool{}
	for _, sp := range plan.Servers {
		served[sp.Port] = true
		target := sp.App.Upstream()
		if sp.App.IsPortal() {
			target = fmt.Sprintf("portal handlers on 127.0.0.1:%d", sp.App.InternalPort)
		}
		public := "-"
		if p, ok := s.PublicPorts[sp.Port]; ok {
			public = fmt.Sprint(p)
		}
		fmt.Fprintf(tw, ":%d\t%s\t%s\t%s\t%s\n", sp.Port, sp.App.Name, target, yesNo(sp.Auth), public)
	}
	for _, a := range plan.Config.Apps {
		switch {
		case !a.Proxied():
			fmt.Fprintf(tw, "-\t%s\tlink only: the app listens on %d itself\t-\t-\n", a.Name, a.ExternalPort)
		case !served[a.ExternalPort]:
			fmt.Fprintf(tw, "-\t%s\tnot exposed: no VAST_TCP_PORT_%d\t-\t-\n", a.Name, a.ExternalPort)
		}
	}
	_ = tw.Flush()
}

// countOf is "1 app", "2 apps".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
