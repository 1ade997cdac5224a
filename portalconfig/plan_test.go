package portalconfig

import (
	"os/exec"
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
	s, err := SettingsFromEnv(Environ{"AUTH_EXCLUDE": "6006", "PUBLIC_IPADDR": "203.0.113.9",
		"VAST_TCP_PORT_1111": "41111", "VAST_TCP_PORT_8080": "48080", "VAST_TCP_PORT_8384": "48384", "VAST_TCP_PORT_22": "40022"})
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
	infos := p.Apps
	if len(infos) != 5 {
		t.Fatalf("infos = %d", len(infos))
	}
	j := infos[1]
	if j.DirectURL != "http://203.0.113.9:48080/tree" || j.PublicPort != 48080 || !j.Proxied || !j.Served || !j.Auth || j.TunnelPort != 8080 {
		t.Errorf("jupyter info = %+v", j)
	}
	if j.SSHCommand != "ssh -p 40022 root@203.0.113.9 -L 18080:localhost:18080" || j.SSHOpenURL != "http://localhost:18080/tree" || j.SSHMissing != "" {
		t.Errorf("ssh hint = %q, %q, %q", j.SSHCommand, j.SSHOpenURL, j.SSHMissing)
	}
	if sy := infos[2]; sy.Proxied || sy.Served || !sy.Listening || sy.Auth || sy.TunnelPort != 8384 || sy.DirectURL != "http://203.0.113.9:48384/" {
		t.Errorf("syncthing info = %+v", sy)
	}
	if tb := infos[3]; tb.Served || tb.Listening || tb.DirectURL != "" || tb.Auth || tb.TunnelPort != 0 {
		t.Errorf("tensorboard (unmapped) info = %+v", tb)
	}
}

func TestMakePlanAuthExcludeAndLocalhostHost(t *testing.T) {
	cfg := mustLoad(t, "localhost:8080:18080:/:A|localhost:8384:18384:/:Syncthing")
	s, _ := SettingsFromEnv(Environ{"AUTH_EXCLUDE": "8080", "CADDY_HEADER_UP_LOCALHOST": "18384"})
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
	s, _ := SettingsFromEnv(Environ{"ENABLE_HTTPS": "true", "INSTANCE_CERT": dir + "/none.crt", "INSTANCE_KEY": dir + "/none.key"})
	p := MakePlan(cfg, &s, time.Now())
	if p.TLS || p.Scheme != "http" || p.Apps[0].Scheme != "http" || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "serving plain HTTP") || !strings.Contains(p.Warnings[0], "none.crt") {
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

// TestSSHCommandRuns checks the SSH hint with ssh itself: `ssh -G` parses
// the command line (options, forwarding spec) and prints the resulting
// configuration without connecting. The old hint ended the -L spec with a
// comma, which ssh refused ("Bad local forwarding specification").
func TestSSHCommandRuns(t *testing.T) {
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("ssh is not installed (Debian package openssh-client)")
	}
	cfg := mustLoad(t, "localhost:8080:18080:/tree:Jupyter|localhost:8080:8080:/terminals/1:Jupyter Terminal|localhost:8443:8443:/:Self|localhost:6006:16006:/:TB")
	for _, ip := range []string{"203.0.113.9", "2001:db8::7"} {
		s, err := SettingsFromEnv(Environ{"PUBLIC_IPADDR": ip, "VAST_TCP_PORT_22": "40022", "VAST_TCP_PORT_8080": "48080"})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range MakePlan(cfg, &s, time.Now()).Apps {
			args := strings.Fields(a.SSHCommand)
			if len(args) < 2 || args[0] != "ssh" {
				t.Fatalf("%s: ssh command = %q", a.Name, a.SSHCommand)
			}
			out, err := exec.Command(ssh, append([]string{"-G", "-F", "/dev/null"}, args[1:]...)...).CombinedOutput()
			if err != nil {
				t.Errorf("%s: ssh -G %q: %v\n%s", a.Name, a.SSHCommand, err, out)
				continue
			}
			if !strings.Contains(string(out), "port 40022") || !strings.Contains(string(out), "localforward") {
				t.Errorf("%s: ssh -G did not take the port and forward:\n%s", a.Name, out)
			}
		}
	}
	// The link into Jupyter's port forwards Jupyter's own port.
	s, _ := SettingsFromEnv(Environ{"PUBLIC_IPADDR": "203.0.113.9", "VAST_TCP_PORT_22": "40022"})
	term := MakePlan(cfg, &s, time.Now()).Apps[1]
	if term.SSHCommand != "ssh -p 40022 root@203.0.113.9 -L 18080:localhost:18080" || term.SSHOpenURL != "http://localhost:18080/terminals/1" {
		t.Errorf("terminal link: %q, %q", term.SSHCommand, term.SSHOpenURL)
	}
}

func TestSSHHintWithoutAddress(t *testing.T) {
	cfg := mustLoad(t, "localhost:8080:18080:/:Jupyter")
	s, _ := SettingsFromEnv(nil)
	a := MakePlan(cfg, &s, time.Now()).Apps[0]
	if a.SSHCommand != "" || a.SSHMissing != "PUBLIC_IPADDR and VAST_TCP_PORT_22 unknown: run the SSH command your provider shows, adding -L 18080:localhost:18080" {
		t.Errorf("without address: command %q, missing %q", a.SSHCommand, a.SSHMissing)
	}
	if strings.Contains(a.SSHMissing+a.SSHCommand, "<") {
		t.Error("no <placeholder> that a shell reads as a redirection")
	}
}

// TestPlanSchemeFollowsEffectiveTLS: ENABLE_HTTPS with no usable pair means
// plain HTTP for every consumer (issue 12, defect 1).
func TestPlanSchemeFollowsEffectiveTLS(t *testing.T) {
	cfg := mustLoad(t, "localhost:1111:11111:/:Instance Portal|localhost:8080:8080:/:Jupyter")
	cfg.Apps[1].Scheme = "https"
	s, _ := SettingsFromEnv(Environ{"ENABLE_HTTPS": "true", "INSTANCE_CERT": "/nonexistent/c", "INSTANCE_KEY": "/nonexistent/k", "PUBLIC_IPADDR": "203.0.113.9", "VAST_TCP_PORT_8080": "48080", "VAST_TCP_PORT_1111": "41111"})
	p := MakePlan(cfg, &s, time.Now())
	if p.TLS || p.Scheme != "http" || p.Apps[0].Scheme != "http" || p.Apps[0].DirectURL != "http://203.0.113.9:41111/" {
		t.Errorf("portal: TLS %v scheme %q app %+v", p.TLS, p.Scheme, p.Apps[0])
	}
	// A link-only app's scheme is its own, whatever the portal's.
	if j := p.Apps[1]; j.Scheme != "https" || j.DirectURL != "https://203.0.113.9:48080/" {
		t.Errorf("jupyter link: %+v", j)
	}
}
