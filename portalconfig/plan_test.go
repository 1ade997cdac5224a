package portalconfig

import (
	"strings"
	"testing"
	"time"
)

func mustLoad(t *testing.T, pc string) *Config {
	t.Helper()
	cfg, _, err := Load(nil, "portal.yaml", pc)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestMakePlan(t *testing.T) {
	cfg := mustLoad(t, "localhost:1111:11111:/:Instance Portal|localhost:8080:18080:/tree:Jupyter|localhost:8384:8384:/:Syncthing|localhost:6006:16006:/:Tensorboard|localhost:8080:18080:/lab:Jupyter Lab")
	s, err := SettingsFromEnv(MapLookup(map[string]string{"AUTH_EXCLUDE": "6006", "PUBLIC_IPADDR": "203.0.113.9"}),
		[]string{"VAST_TCP_PORT_1111=41111", "VAST_TCP_PORT_8080=48080", "VAST_TCP_PORT_8384=48384", "VAST_TCP_PORT_22=40022"})
	if err != nil {
		t.Fatal(err)
	}
	p := MakePlan(cfg, &s, time.Now())
	var ports []int
	for _, sp := range p.Servers {
		ports = append(ports, sp.Port)
	}
	// 6006 has no VAST_TCP_PORT mapping, 8384 is link-only, 8080 appears once.
	if len(ports) != 2 || ports[0] != 1111 || ports[1] != 8080 {
		t.Fatalf("server ports = %v", ports)
	}
	if p.Portal == nil || p.Portal.InternalPort != 11111 {
		t.Fatalf("portal = %+v", p.Portal)
	}
	if !p.Servers[1].Auth || p.Servers[1].App.Name != "Jupyter" {
		t.Errorf("8080 = %+v", p.Servers[1])
	}
	infos := p.AppsInfo()
	if len(infos) != 5 {
		t.Fatalf("infos = %d", len(infos))
	}
	j := infos[1]
	if j.DirectURL != "http://203.0.113.9:48080/tree" || j.PublicPort != 48080 || !j.Proxied || !j.Exposed || !j.Auth {
		t.Errorf("jupyter info = %+v", j)
	}
	if !strings.Contains(j.SSHForward, "ssh -p 40022 root@203.0.113.9 -L 18080:localhost:18080") {
		t.Errorf("ssh hint = %q", j.SSHForward)
	}
	if sy := infos[2]; sy.Proxied || !sy.Exposed || sy.Auth || sy.DirectURL != "http://203.0.113.9:48384/" {
		t.Errorf("syncthing info = %+v", sy)
	}
	if tb := infos[3]; tb.Exposed || tb.DirectURL != "" || tb.Auth {
		t.Errorf("tensorboard (unmapped) info = %+v", tb)
	}
}

func TestMakePlanAuthExcludeAndLocalhostHost(t *testing.T) {
	cfg := mustLoad(t, "localhost:8080:18080:/:A|localhost:8384:18384:/:Syncthing")
	s, _ := SettingsFromEnv(MapLookup(map[string]string{"AUTH_EXCLUDE": "8080", "CADDY_HEADER_UP_LOCALHOST": "18384"}), nil)
	p := MakePlan(cfg, &s, time.Now())
	if p.Servers[0].Auth || !p.Servers[1].Auth {
		t.Errorf("auth: %+v", p.Servers)
	}
	if p.Servers[0].HostLocalhost || !p.Servers[1].HostLocalhost {
		t.Errorf("host localhost: %+v", p.Servers)
	}
}

func TestMakePlanTLSFallsBackWithWarning(t *testing.T) {
	cfg := mustLoad(t, "localhost:8080:18080:/:A")
	dir := t.TempDir()
	s, _ := SettingsFromEnv(MapLookup(map[string]string{"ENABLE_HTTPS": "true", "INSTANCE_CERT": dir + "/none.crt", "INSTANCE_KEY": dir + "/none.key"}), nil)
	p := MakePlan(cfg, &s, time.Now())
	if p.TLS || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "serving plain HTTP") || !strings.Contains(p.Warnings[0], "none.crt") {
		t.Errorf("plan = TLS %v, warnings %q", p.TLS, p.Warnings)
	}
}

func TestFindIgnoresCase(t *testing.T) {
	cfg := mustLoad(t, "localhost:6006:16006:/:Tensorboard|localhost:8080:18080:/:Jupyter")
	for _, name := range []string{"TensorBoard", "tensorboard", "JUPYTER", "Jupyter"} {
		if _, ok := cfg.Find(name); !ok {
			t.Errorf("Find(%q) failed", name)
		}
	}
	if _, ok := cfg.Find("ComfyUI"); ok {
		t.Error("Find(ComfyUI) must fail")
	}
}
