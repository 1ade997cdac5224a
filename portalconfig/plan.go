package portalconfig

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Plan is what the Caddy configuration must contain, decided from the apps
// and the environment. The caddymodules adapter renders it as Caddy JSON.
type Plan struct {
	Config   *Config
	Settings *Settings
	// Servers has one entry per exposed external port, sorted by port.
	Servers []ServerPlan
	// Portal is the Instance Portal entry, when the config has one; its
	// internal port is served by this binary on 127.0.0.1.
	Portal *App
	// TLS is true when every app server serves the instance certificate.
	TLS bool
	// Warnings are things the user should know (unusable certificate, …).
	Warnings []string
}

// ServerPlan is one external listener.
type ServerPlan struct {
	Port int
	// App is the proxied app on this port (the first, when several entries
	// share the port with the same target).
	App App
	// Auth is true when vastauth guards the port.
	Auth bool
	// HostLocalhost sends Host/Origin as localhost:<internal port>.
	HostLocalhost bool
}

// ServerName is the key of the server in Caddy's http app.
func (s ServerPlan) ServerName() string { return "app_" + strconv.Itoa(s.Port) }

// MakePlan decides the servers. now is used to judge certificate validity.
func MakePlan(cfg *Config, s *Settings, now time.Time) *Plan {
	p := &Plan{Config: cfg, Settings: s}
	seen := map[int]bool{}
	for _, a := range cfg.Apps {
		if a.IsPortal() && p.Portal == nil {
			portal := a
			p.Portal = &portal
		}
		if !a.Proxied() || !s.Exposed(a.ExternalPort) || seen[a.ExternalPort] {
			continue
		}
		seen[a.ExternalPort] = true
		p.Servers = append(p.Servers, ServerPlan{
			Port:          a.ExternalPort,
			App:           a,
			Auth:          s.AuthFor(a.ExternalPort),
			HostLocalhost: s.HostLocalhost(a.InternalPort),
		})
	}
	sort.Slice(p.Servers, func(i, j int) bool { return p.Servers[i].Port < p.Servers[j].Port })
	if s.EnableHTTPS {
		c := CheckCertPair(s.CertFile, s.KeyFile, now)
		p.TLS = c.Usable
		if !c.Usable {
			p.Warnings = append(p.Warnings, "ENABLE_HTTPS=true but TLS is off, serving plain HTTP: "+c.Warning)
		} else if c.Warning != "" {
			p.Warnings = append(p.Warnings, c.Warning)
		}
	}
	return p
}

// Exposed returns the apps that have a server, in port order.
func (p *Plan) Exposed() []App {
	out := make([]App, len(p.Servers))
	for i, s := range p.Servers {
		out[i] = s.App
	}
	return out
}

// AppInfo is one app as /api/apps reports it to the dashboard.
type AppInfo struct {
	Name         string `json:"name"`
	Hostname     string `json:"hostname"`
	ExternalPort int    `json:"external_port"`
	InternalPort int    `json:"internal_port"`
	OpenPath     string `json:"open_path"`
	// Proxied: Caddy listens on external_port and proxies to internal_port.
	Proxied bool `json:"proxied"`
	// Exposed: Caddy listens for it on this instance (see VAST_TCP_PORT_*).
	Exposed bool `json:"exposed"`
	Auth    bool `json:"auth"`
	// PublicPort is VAST_TCP_PORT_<external_port>, when set.
	PublicPort int `json:"public_port,omitempty"`
	// DirectURL is http(s)://PUBLIC_IPADDR:PUBLIC_PORT<open_path>, when both are known.
	DirectURL string `json:"direct_url,omitempty"`
	// SSHForward tells how to reach the internal port without the portal.
	SSHForward string `json:"ssh_forward"`
}

// AppsInfo lists every app for /api/apps, in config order.
func (p *Plan) AppsInfo() []AppInfo {
	exposed := map[int]bool{}
	for _, s := range p.Servers {
		exposed[s.Port] = true
	}
	scheme := "http"
	if p.TLS {
		scheme = "https"
	}
	sshHost, sshPort := "<instance-ip>", "<ssh-port>"
	if p.Settings.PublicIP != "" {
		sshHost = p.Settings.PublicIP
	}
	if port, ok := p.Settings.PublicPorts[22]; ok {
		sshPort = strconv.Itoa(port)
	}
	out := make([]AppInfo, 0, len(p.Config.Apps))
	for _, a := range p.Config.Apps {
		info := AppInfo{
			Name: a.Name, Hostname: a.Hostname, ExternalPort: a.ExternalPort, InternalPort: a.InternalPort,
			OpenPath: a.OpenPath, Proxied: a.Proxied(), Exposed: exposed[a.ExternalPort] || !a.Proxied(),
			Auth: a.Proxied() && exposed[a.ExternalPort] && p.Settings.AuthFor(a.ExternalPort),
			SSHForward: fmt.Sprintf("ssh -p %s root@%s -L %d:localhost:%d, then open http://localhost:%d%s",
				sshPort, sshHost, a.InternalPort, a.InternalPort, a.InternalPort, a.OpenPath),
		}
		if pub, ok := p.Settings.PublicPorts[a.ExternalPort]; ok {
			info.PublicPort = pub
			if p.Settings.PublicIP != "" {
				s := scheme
				if !a.Proxied() {
					s = "http" // the app serves the port itself; we cannot know
				}
				info.DirectURL = fmt.Sprintf("%s://%s%s", s, joinHostPort(p.Settings.PublicIP, pub), a.OpenPath)
			}
		}
		out = append(out, info)
	}
	return out
}
