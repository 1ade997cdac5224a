package portalcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/atomicfile"
	"github.com/instanceportal/portal/bootstatus"
	"github.com/instanceportal/portal/capabilities"
	"github.com/instanceportal/portal/portalconfig"
)

func init() { Register(capabilitiesCommand) }

// capabilitiesLiveTimeout bounds the request to the running portal.
const capabilitiesLiveTimeout = 10 * time.Second

func capabilitiesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "capabilities [metrics,packages] [--static] [--write FILE] [--boot]",
		Short: "Print this instance's capability manifest (vast-capabilities)",
		Long: `Prints the capability manifest as JSON: what the instance runs and how to
reach it (docs/agents.md). It asks the running portal first (with the
optional include list, as ?include=), and builds the manifest here when the
portal does not answer (service states then come from supervisord, without
metrics or tunnels). A pointer to the agent guide goes to stderr.

--static builds it here without asking the portal. --write FILE writes the
built manifest to FILE instead of printing it. --boot is the boot step: it
writes the static manifest (CAPABILITIES_SNAPSHOT, default
/etc/vast_capabilities.json), the combined agent guide (AGENTS_GUIDE, default
/etc/vast-agents-guide.md) from every guide in AGENTS_DIR (/etc/vast_agents),
links AGENTS.md and CLAUDE.md to it in each --link-dir (never over a user's
own file), and puts the agent line in the SSH banner (--banner) unless
ENABLE_AGENT_BANNER=false.`,
		Args:          cobra.MaximumNArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := cmd.Flags()
	f.StringP("config", "c", "", "portal.yaml (default $PORTAL_YAML or "+portalconfig.DefaultPortalYAML+")")
	f.Bool("static", false, "build the manifest here; do not ask the running portal")
	f.String("write", "", "write the built manifest to this file instead of printing it")
	f.Bool("boot", false, "write the snapshot, the combined guide, its links and the banner line")
	f.StringSlice("link-dir", nil, "with --boot: where to link AGENTS.md and CLAUDE.md (default $WORKSPACE, /root, /home/user)")
	f.String("banner", capabilities.DefaultBannerFile, "with --boot: the SSH banner file")
	f.String("portal", "", "the portal's internal address (default 127.0.0.1:<its internal port>)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		include := ""
		if len(args) == 1 {
			include = args[0]
		}
		env := portalconfig.OSEnviron()
		static, _ := f.GetBool("static")
		write, _ := f.GetString("write")
		boot, _ := f.GetBool("boot")
		cfgPath, _ := f.GetString("config")
		if cfgPath == "" {
			cfgPath = env.Get("PORTAL_YAML", portalconfig.DefaultPortalYAML)
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		switch {
		case boot:
			dirs, _ := f.GetStringSlice("link-dir")
			if len(dirs) == 0 {
				dirs = []string{env.Get("WORKSPACE", "/workspace"), "/root", "/home/user"}
			}
			banner, _ := f.GetString("banner")
			return capabilitiesBoot(ctx, cmd, cfgPath, env, dirs, banner)
		case write != "":
			m, err := staticManifest(ctx, cfgPath, env, include)
			if err != nil {
				return err
			}
			return writeManifest(write, m)
		}
		if !static {
			addr, _ := f.GetString("portal")
			if body, err := liveManifest(ctx, addr, cfgPath, env, include); err == nil {
				_, err = cmd.OutOrStdout().Write(body)
				guidePointer(cmd.ErrOrStderr(), env)
				return err
			}
		}
		m, err := staticManifest(ctx, cfgPath, env, include)
		if err != nil {
			return err
		}
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		if _, err := cmd.OutOrStdout().Write(append(b, '\n')); err != nil {
			return err
		}
		guidePointer(cmd.ErrOrStderr(), env)
		return nil
	}
	return cmd
}

// guidePointer tells the reader, on stderr, that the JSON is live state
// and where the operating guide is.
func guidePointer(w io.Writer, env portalconfig.Environ) {
	guide := env.Get(capabilities.CombinedGuideEnv, capabilities.DefaultCombinedGuide)
	fmt.Fprintf(w, "\n>>> The JSON above is this instance's live state, not its operating guide.\n"+
		">>> Before you act on this instance, read %s (also linked as ./AGENTS.md).\n", guide)
}

// loadCapabilitiesPlan reads portal.yaml, or PORTAL_CONFIG when the file
// does not exist.
func loadCapabilitiesPlan(path string, env portalconfig.Environ) (*portalconfig.Plan, error) {
	body, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	plan, _, err := portalconfig.LoadPlan(body, path, env, time.Now())
	return plan, err
}

// liveManifest asks the running portal on its internal port.
func liveManifest(ctx context.Context, addr, cfgPath string, env portalconfig.Environ, include string) ([]byte, error) {
	if addr == "" {
		port := 11111
		if plan, err := loadCapabilitiesPlan(cfgPath, env); err == nil && plan.Portal != nil {
			port = plan.Portal.InternalPort
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
	}
	u := "http://" + addr + capabilities.CapabilitiesPath
	if include != "" {
		u += "?include=" + url.QueryEscape(include)
	}
	ctx, cancel := context.WithTimeout(ctx, capabilitiesLiveTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var m json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&m); err != nil {
		return nil, err
	}
	var out []byte
	if out, err = json.MarshalIndent(m, "", "  "); err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// staticManifest builds the manifest here: the apps of portal.yaml with
// supervisord's states when it answers, no metrics, tunnels or probe.
func staticManifest(ctx context.Context, cfgPath string, env portalconfig.Environ, include string) (capabilities.Manifest, error) {
	plan, err := loadCapabilitiesPlan(cfgPath, env)
	if err != nil {
		return capabilities.Manifest{}, err
	}
	s := plan.Settings
	tracker, err := appstate.New(appstate.PlanConfig(plan))
	if err != nil {
		return capabilities.Manifest{}, err
	}
	_, packages := capabilities.ParseInclude(include)
	src := capabilities.Sources{Apps: tracker}
	if packages {
		src.Packages = &capabilities.PackageProber{}
	}
	return capabilities.Build(ctx, src, capabilities.Options{
		IncludePackages: packages,
		Env:             env,
		Scheme:          plan.Scheme,
		Markers:         bootstatus.Config{LockFile: s.ProvisioningLock, DoneFile: s.ProvisioningDone, FailedFile: s.ProvisioningFailed},
	})
}

// writeManifest writes m to path, readable by all (it holds no secret).
func writeManifest(path string, m capabilities.Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// capabilitiesBoot is the boot step: snapshot, combined guide, links,
// banner. Each part that fails is reported and the others still run.
func capabilitiesBoot(ctx context.Context, cmd *cobra.Command, cfgPath string, env portalconfig.Environ, dirs []string, banner string) error {
	out := cmd.OutOrStdout()
	var errs []error
	snapshot := env.Get(capabilities.SnapshotFileEnv, capabilities.DefaultSnapshotFile)
	if m, err := staticManifest(ctx, cfgPath, env, ""); err != nil {
		errs = append(errs, fmt.Errorf("capability manifest: %w", err))
	} else if err := writeManifest(snapshot, m); err != nil {
		errs = append(errs, fmt.Errorf("writing %s: %w", snapshot, err))
	} else {
		fmt.Fprintf(out, "wrote %s\n", snapshot)
	}
	agentsDir := env.Get(capabilities.AgentsDirEnv, capabilities.DefaultAgentsDir)
	combined := env.Get(capabilities.CombinedGuideEnv, capabilities.DefaultCombinedGuide)
	text, files := capabilities.CombinedGuide(agentsDir)
	if len(files) == 0 {
		fmt.Fprintf(out, "no guide in %s: no combined guide, no links\n", agentsDir)
	} else if err := atomicfile.Write(combined, text, 0o644); err != nil {
		errs = append(errs, fmt.Errorf("writing %s: %w", combined, err))
	} else {
		fmt.Fprintf(out, "wrote %s (%d guide(s))\n", combined, len(files))
		for _, line := range capabilities.LinkGuide(combined, dirs, filepath.Join(agentsDir, capabilities.BaseGuide)) {
			fmt.Fprintln(out, line)
		}
	}
	enabled := capabilities.BannerEnabled(env[capabilities.AgentBannerEnv])
	exists, err := capabilities.UpdateBanner(banner, capabilities.BannerLine(combined), enabled)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("banner %s: %w", banner, err))
	case !exists:
		fmt.Fprintf(out, "no %s: no banner line\n", banner)
	case enabled:
		fmt.Fprintf(out, "agent line in %s\n", banner)
	default:
		fmt.Fprintf(out, "agent line removed from %s (%s=false)\n", banner, capabilities.AgentBannerEnv)
	}
	return errors.Join(errs...)
}
