package portalcmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/gpumetrics/nvmlgpu"
	"github.com/instanceportal/portal/portalconfig"
)

func init() { Register(prometheusTargetCommand) }

// gpuModelTimeout bounds the NVML read for the gpu_model label: a wedged
// driver must not hang the command.
const gpuModelTimeout = 10 * time.Second

func prometheusTargetCommand() *cobra.Command {
	var path, gpuModel string
	cmd := &cobra.Command{
		Use:   "prometheus-target [--config /etc/portal.yaml] [--gpu-model NAME]",
		Short: "Print this instance's Prometheus file_sd entry",
		Long: `Prints this instance as a Prometheus file_sd_configs entry (JSON): the
public address of the portal's /metrics (PUBLIC_IPADDR and VAST_TCP_PORT_<p>
of the "Instance Portal" app's external port p, https when ENABLE_HTTPS is
on) and the labels instance_id (CONTAINER_ID), container_label (VAST_CONTAINERLABEL),
gpu_model (the first GPU's name, read through NVML unless --gpu-model
gives it) and host. Collect one file per instance in a directory that your
Prometheus watches; docs/gpu_metrics.md has the scrape config, with the
token as a bearer credentials file. The token itself is never printed.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := portalconfig.OSEnviron()
			t, err := targetFromConfig(path, env)
			if err != nil {
				return err
			}
			t.GPUModel = gpuModel
			if !cmd.Flags().Changed("gpu-model") {
				t.GPUModel = firstGPUModel()
			}
			t.Host, _ = os.Hostname()
			b, err := gpumetrics.FileSD(t)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "/etc/portal.yaml", "portal.yaml (PORTAL_CONFIG when it is empty or missing)")
	cmd.Flags().StringVar(&gpuModel, "gpu-model", "", "the gpu_model label (default: the first GPU's name from NVML, none without a GPU)")
	return cmd
}

// targetFromConfig finds the portal's public address from portal.yaml and
// the environment.
func targetFromConfig(path string, env portalconfig.Environ) (gpumetrics.Target, error) {
	body, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return gpumetrics.Target{}, err
	}
	settings, err := portalconfig.SettingsFromEnv(env)
	if err != nil {
		return gpumetrics.Target{}, err
	}
	cfg, _, err := portalconfig.Load(body, path, env[portalconfig.PortalConfigVar])
	if err != nil {
		return gpumetrics.Target{}, err
	}
	portal, ok := cfg.Portal()
	if !ok {
		return gpumetrics.Target{}, fmt.Errorf("%s: no %q app: the portal is not exposed", path, portalconfig.PortalAppName)
	}
	pub, ok := settings.PublicPorts[portal.ExternalPort]
	if !ok {
		return gpumetrics.Target{}, fmt.Errorf("VAST_TCP_PORT_%d is not set: the portal's external port %d has no public mapping", portal.ExternalPort, portal.ExternalPort)
	}
	plan := portalconfig.MakePlan(cfg, &settings, time.Now())
	id := env["CONTAINER_ID"]
	if id == "" {
		id = strings.TrimPrefix(settings.ContainerLabel, "C.")
	}
	return gpumetrics.Target{
		PublicIP: settings.PublicIP, PublicPort: pub, HTTPS: plan.TLS,
		InstanceID: id, Label: settings.ContainerLabel,
	}, nil
}

// firstGPUModel reads the first GPU's name through NVML, "" without one.
func firstGPUModel() string {
	src := nvmlgpu.NewSource(nvmlgpu.Real())
	ctx, cancel := context.WithTimeout(context.Background(), gpuModelTimeout)
	defer cancel()
	done := make(chan string, 1)
	go func() {
		rep := src.Sweep(ctx)
		_ = src.Close()
		if len(rep.GPUs) > 0 {
			done <- rep.GPUs[0].Name
			return
		}
		done <- ""
	}()
	select {
	case name := <-done:
		return name
	case <-ctx.Done():
		return ""
	}
}
