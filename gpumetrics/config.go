package gpumetrics

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

// Config is every setting of the metrics: the `gpu_metrics` Caddy handler
// embeds it, so this is the handler's JSON, and its Caddyfile directive
// fills the same fields by their JSON names. Zero values take Default()'s
// (confdecl.FillDefaults).
type Config struct {
	// Format is what the handler serves: json (the dashboard's
	// /api/metrics) or prometheus (the text format, dcgm-exporter's names).
	// Handlers that differ only in format share one collector.
	// Default: json
	Format string `json:"format,omitempty"`
	// Interval is the time between sweeps; at least 100ms.
	// Default: 1s
	Interval confdecl.Duration `json:"interval,omitempty"`
	// Timeout bounds how long a request waits for the first sweep, and
	// how long a sweep may run before the previous sample is served again
	// marked stale (a stuck driver call is left to finish on its own).
	// Default: 2s
	Timeout confdecl.Duration `json:"timeout,omitempty"`
	// Workspace is reported as a second disk when it is on another
	// filesystem than /. An absolute path; a placeholder such as
	// {env.WORKSPACE} is resolved first. Default: none
	Workspace string `json:"workspace,omitempty"`
	// Root is prepended to /proc, /sys and the disks' paths: a host's root
	// mounted into a sidecar container, or a fixture tree in tests.
	// Default: /
	Root string `json:"root,omitempty"`
	// ROCmSMI is the rocm-smi program read for AMD GPUs when NVML is
	// unavailable, a path or a name on PATH; "off" disables it.
	// Default: rocm-smi
	ROCmSMI string `json:"rocm_smi,omitempty"`
}

// minInterval keeps a misconfigured interval from turning the sampler into
// a busy loop over the driver.
const minInterval = 100 * time.Millisecond

// Default returns the production settings.
func Default() Config {
	return Config{
		Format:   "json",
		Interval: confdecl.Duration(time.Second),
		Timeout:  confdecl.Duration(2 * time.Second),
		Root:     "/",
		ROCmSMI:  "rocm-smi",
	}
}

// WithDefaults returns c with every zero setting set to Default()'s.
func (c Config) WithDefaults() Config {
	confdecl.FillDefaults(&c, Default())
	return c
}

// Check checks the settings, after WithDefaults; each message names the
// JSON field. A path holding a placeholder ("{…}") is checked once it has
// been resolved, so a Caddyfile with {env.WORKSPACE} passes here.
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var ck confdecl.Check
	// Messages name each setting by its JSON name, found from the field.
	name := func(field any) string { return confdecl.Name(&c, field) }
	ck.OneOf(name(&c.Format), c.Format, "json", "prometheus")
	ck.NotNegativeDuration(name(&c.Interval), c.Interval)
	if c.Interval >= 0 {
		ck.DurationAtLeast(name(&c.Interval), c.Interval, confdecl.Duration(minInterval))
	}
	ck.NotNegativeDuration(name(&c.Timeout), c.Timeout)
	for _, p := range []*string{&c.Workspace, &c.Root} {
		if *p != "" && !strings.Contains(*p, "{") && !filepath.IsAbs(*p) {
			ck.Failf(name(p), "%q: want an absolute path", *p)
		}
	}
	return ck.Err()
}

// SamplerKey names what the samples depend on: every setting but Format.
// Handlers with the same key can share one Collector.
func (c Config) SamplerKey() string {
	c = c.WithDefaults()
	return fmt.Sprintf("interval=%v|timeout=%v|workspace=%s|root=%s|rocm=%s", c.Interval, c.Timeout, c.Workspace, c.Root, c.ROCmSMI)
}

// SystemReader returns the reader of the system figures these settings
// describe: /proc and /sys under Root, and the disks of / and Workspace.
func (c Config) SystemReader(numCPU int) *SystemReader {
	c = c.WithDefaults()
	disks := []DiskPath{{Label: "root", Path: filepath.Join(c.Root, "/")}}
	if c.Workspace != "" {
		disks = append(disks, DiskPath{Label: "workspace", Path: filepath.Join(c.Root, c.Workspace)})
	}
	return &SystemReader{Root: c.Root, Disks: disks, NumCPU: numCPU}
}
