package gpumetrics

import (
	"strings"
	"testing"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	if err := Default().Check(); err != nil {
		t.Fatalf("Default() does not validate: %v", err)
	}
	if c := (Config{Interval: ms(250)}).WithDefaults(); c.Interval != ms(250) || c.Timeout != Default().Timeout || c.Root != "/" || c.Format != "json" {
		t.Fatalf("WithDefaults: %+v", c)
	}
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Format: "xml"}, `format: "xml": want json, prometheus`},
		{Config{Interval: ms(99)}, "interval: must be at least 100ms, got 99ms"},
		{Config{Interval: -ms(1)}, "interval: must not be negative, got -1ms"},
		{Config{Timeout: -ms(5)}, "timeout: must not be negative, got -5ms"},
		{Config{Workspace: "ws"}, `workspace: "ws": want an absolute path`},
		{Config{Root: "host/"}, `root: "host/": want an absolute path`},
	}
	for _, c := range cases {
		err := c.cfg.WithDefaults().Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: Validate() = %v, want %q", c.cfg, err, c.want)
		}
	}
	if err := (Config{Interval: -ms(1)}).WithDefaults().Check(); strings.Contains(err.Error(), "at least") {
		t.Errorf("a negative interval is reported once: %v", err)
	}
	// A placeholder is checked once resolved.
	if err := (Config{Workspace: "{env.WORKSPACE}"}).WithDefaults().Check(); err != nil {
		t.Errorf("placeholder workspace: %v", err)
	}
}

func TestConfigSamplerKeyAndDisks(t *testing.T) {
	if (Config{Format: "json"}).SamplerKey() != (Config{Format: "prometheus"}).SamplerKey() {
		t.Error("the format must not split the collector")
	}
	if (Config{}).SamplerKey() != Default().SamplerKey() {
		t.Error("defaults not applied in the key")
	}
	if (Config{Workspace: "/a"}).SamplerKey() == (Config{Workspace: "/b"}).SamplerKey() {
		t.Error("different workspaces share a key")
	}
	r := Config{Root: "/host", Workspace: "/workspace"}.SystemReader(4)
	if r.Root != "/host" || r.NumCPU != 4 || len(r.Disks) != 2 || r.Disks[0] != (DiskPath{"root", "/host"}) || r.Disks[1] != (DiskPath{"workspace", "/host/workspace"}) {
		t.Fatalf("SystemReader: %+v", r)
	}
	if r := (Config{}).SystemReader(1); len(r.Disks) != 1 || r.Disks[0].Path != "/" {
		t.Fatalf("SystemReader without a workspace: %+v", r.Disks)
	}
}
