package portalcmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/provisioner"
	"github.com/instanceportal/portal/redact"
)

func init() { Register(provisionCommand) }

// defaultManifest is the manifest baked into an image (the reference's).
const defaultManifest = "/provisioning.yaml"

// ManifestSource picks the manifest: the argument, else
// PROVISIONING_MANIFEST (a path or a URL), else /provisioning.yaml under
// root when it exists; "" means none (script-only mode). With onlyArg, as
// the reference's provisioner command, only the argument counts.
func ManifestSource(args []string, env provisioner.Env, root string, onlyArg bool) string {
	if len(args) > 0 {
		return args[0]
	}
	if onlyArg {
		return ""
	}
	if v := env.Get(provisioner.EnvManifest); v != "" {
		return v
	}
	if fi, err := os.Stat(root + defaultManifest); err == nil && fi.Mode().IsRegular() {
		return root + defaultManifest
	}
	return ""
}

func provisionCommand() *cobra.Command {
	var (
		dryRun, force, onlyArg bool
		failedMarker           string
	)
	cmd := &cobra.Command{
		Use:   "provision [MANIFEST|URL] [--dry-run] [--force]",
		Short: "Provision the instance from a manifest (the reference's format, version 1)",
		Long: `Runs a provisioning manifest: settings, auth, on_failure, extensions,
write_files, apt_packages, git_repos, pip_packages, conda_packages, downloads,
services, write_files_late, post_commands, then PROVISIONING_SCRIPT, in that
order (docs/provisioning.md). Each phase is skipped when its content is what
the last successful run did (hashes under PROVISIONER_STATE_DIR
[/.provisioner_state]); --force redoes every phase.

The manifest is the argument, else PROVISIONING_MANIFEST (a path or an http(s)
URL), else /provisioning.yaml when it exists; with none, only
PROVISIONING_SCRIPT runs, and with neither nothing does. Progress is published
to PROVISIONER_STATE_DIR/progress.json, which the portal serves at
/api/provisioning.

Exit status: 0 done, 1 failed (after on_failure's retries and action),
78 --force refused to clear a state directory the provisioner did not create.`,
		Args: cobra.MaximumNArgs(1),
	}
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		env := provisioner.OSEnv()
		root := env.Get("PORTAL_ROOT")
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		res := provisioner.Run(ctx, provisioner.Options{
			Source: ManifestSource(fl.Args(), env, root, onlyArg),
			DryRun: dryRun, Force: force, Env: env, Root: root,
			Out: cmd.OutOrStdout(),
		})
		if failedMarker != "" && !dryRun {
			writeFailedMarker(failedMarker, res)
		}
		if res.Code != 0 {
			return res.Code, errors.New("provisioning did not complete (the log above says why)")
		}
		return 0, nil
	})
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be done; change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "forget what earlier runs did and run every phase")
	cmd.Flags().BoolVar(&onlyArg, "manifest-from-argument-only", false,
		"take the manifest only from the argument, as the reference's provisioner command does")
	cmd.Flags().StringVar(&failedMarker, "failed-marker", "",
		"on failure write status= and message= (the phase and why) here; on success remove it")
	_ = cmd.Flags().MarkHidden("manifest-from-argument-only")
	return cmd
}

// writeFailedMarker leaves the boot's failed marker (package bootstatus
// reads it) naming the failed phase and why, or removes it on success.
func writeFailedMarker(path string, res provisioner.Result) {
	if res.Code == 0 {
		os.Remove(path)
		return
	}
	msg := "provisioning failed"
	if res.Err != nil {
		msg = "provisioning failed: " + strings.ReplaceAll(res.Err.Error(), "\n", "; ")
	}
	msg += " (see provisioning.log); the next start tries again"
	body := fmt.Sprintf("status=%d\nmessage=%s\n", res.Code, redact.URLs(msg))
	_ = os.WriteFile(path, []byte(body), 0o644)
}
