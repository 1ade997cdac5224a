package portalconfig

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Plan is what the Caddy configuration must contain, decided once from the
// apps and the environment. It also holds the facts every consumer needs —
// whether TLS is really on, the scheme, which ports are served, where each
// link goes — so that the tunnels app, the dashboard, /api/apps and the
// commands read them here and never work them out again.
type Plan struct {
	Config   *Config
	Settings *Settings
	// Servers has one entry per external port the portal proxies and that
	// is published (Settings.Published), sorted by port.
	Servers []ServerPlan
	// Portal is the Instance Portal entry, when the config has one; its
	// internal port is served by this binary on 127.0.0.1.
	Portal *App
	// TLS is the effective TLS state: ENABLE_HTTPS asked for it and the
	// instance pair is usable. With an unusable pair it is false (and a
	// warning says why) even though ENABLE_HTTPS is true.
	TLS bool
	// Scheme is the scheme of every port the portal serves: "https" when
	// TLS is on, else "http".
	Scheme string
	// Apps is every entry as /api/apps and the dashboard show it, in
	// config order, with its links resolved.
	Apps []AppInfo
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

// LoadPlan parses and validates a portal.yaml body (PORTAL_CONFIG when it
// is empty) against the environment env: the config's warnings, then the
// plan's, each naming filename.
func LoadPlan(body []byte, filename string, env Environ, now time.Time) (*Plan, []Warning, error) {
	settings, err := SettingsFromEnv(env)
	if err != nil {
		return nil, nil, err
	}
	cfg, warns, err := Load(body, filename, env[PortalConfigVar])
	if err != nil {
		return nil, warns, err
	}
	plan := MakePlan(cfg, &settings, now)
	for _, w := range plan.Warnings {
		warns = append(warns, Warning{Source: filename, Msg: w})
	}
	return plan, warns, nil
}

// MakePlan decides the servers and resolves the facts. now is used to judge
// certificate validity.
func MakePlan(cfg *Config, s *Settings, now time.Time) *Plan {
	p := &Plan{Config: cfg, Settings: s, Scheme: "http"}
	seen := map[int]bool{}
	for _, a := range cfg.Apps {
		if a.IsPortal() && p.Portal == nil {
			portal := a
			p.Portal = &portal
		}
		if !a.Proxied() || !s.Published(a.ExternalPort) || seen[a.ExternalPort] {
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
		c := checkCertPair(s.CertFile, s.KeyFile, now)
		p.TLS = c.Usable
		if !c.Usable {
			p.Warnings = append(p.Warnings, "ENABLE_HTTPS=true but TLS is off, serving plain HTTP: "+c.Warning)
		} else if c.Warning != "" {
			p.Warnings = append(p.Warnings, c.Warning)
		}
	}
	if p.TLS {
		p.Scheme = "https"
	}
	p.Apps = p.appsInfo()
	return p
}

// Server returns the server on external port port, if the portal has one.
func (p *Plan) Server(port int) (ServerPlan, bool) {
	for _, sp := range p.Servers {
		if sp.Port == port {
			return sp, true
		}
	}
	return ServerPlan{}, false
}

// AppInfo is one app as /api/apps reports it to the dashboard.
type AppInfo struct {
	Name         string `json:"name"`
	Hostname     string `json:"hostname"`
	ExternalPort int    `json:"external_port"`
	InternalPort int    `json:"internal_port"`
	OpenPath     string `json:"open_path"`
	// Proxied: the entry asks the portal to proxy external_port to
	// internal_port (they differ).
	Proxied bool `json:"proxied"`
	// Served: the portal listens on external_port, because it proxies the
	// app there (and the port is published) or because the entry is a
	// link into such a port.
	Served bool `json:"served"`
	// Listening: something answers on external_port — the portal (Served)
	// or, for a link-only entry, the app itself.
	Listening bool `json:"listening"`
	// Scheme of external_port: the portal's when Served, else the app's own.
	Scheme string `json:"scheme"`
	// Auth: the portal asks for credentials on external_port.
	Auth bool `json:"auth"`
	// TunnelPort is the local port a tunnel to this app must target: the
	// external port when the portal serves it (so that its authentication
	// applies), the app's own port for a link-only app, 0 when neither
	// exists (a proxied app whose port is not published).
	TunnelPort int `json:"tunnel_port"`
	// PublicPort is VAST_TCP_PORT_<external_port>, when set.
	PublicPort int `json:"public_port,omitempty"`
	// DirectURL is scheme://PUBLIC_IPADDR:PUBLIC_PORT<open_path>, when both are known.
	DirectURL string `json:"direct_url,omitempty"`
	// SSHCommand is one runnable command that forwards the app's own port
	// to the user's machine, bypassing the portal. Empty when the instance's
	// address or SSH port is unknown; SSHMissing then says which.
	SSHCommand string `json:"ssh_command,omitempty"`
	SSHMissing string `json:"ssh_missing,omitempty"`
	// SSHOpenURL is what to open once the forward runs.
	SSHOpenURL string `json:"ssh_open_url"`
}

// appsInfo resolves every entry, in config order.
func (p *Plan) appsInfo() []AppInfo {
	s := p.Settings
	sshPort, hasSSHPort := s.PublicPorts[22]
	var missing []string
	if s.PublicIP == "" {
		missing = append(missing, "PUBLIC_IPADDR")
	}
	if !hasSSHPort {
		missing = append(missing, "VAST_TCP_PORT_22")
	}
	proxiedOn := map[int]App{} // external port → the app proxied there
	for _, a := range p.Config.Apps {
		if _, ok := proxiedOn[a.ExternalPort]; a.Proxied() && !ok {
			proxiedOn[a.ExternalPort] = a
		}
	}
	out := make([]AppInfo, 0, len(p.Config.Apps))
	for _, a := range p.Config.Apps {
		info := AppInfo{
			Name: a.Name, Hostname: a.Hostname, ExternalPort: a.ExternalPort, InternalPort: a.InternalPort,
			OpenPath: a.OpenPath, Proxied: a.Proxied(), Scheme: a.Scheme,
		}
		// What serves the content without the portal: the app's internal
		// port, or, for a link into a proxied app's port, that app's.
		local, localScheme := a.InternalPort, a.Scheme
		if target, ok := proxiedOn[a.ExternalPort]; ok {
			local, localScheme = target.InternalPort, "http"
			if sp, ok := p.Server(a.ExternalPort); ok {
				info.Served, info.Listening, info.Scheme = true, true, p.Scheme
				info.Auth = sp.Auth
				info.TunnelPort = a.ExternalPort
			}
		} else if !a.Proxied() {
			info.Listening = true
			info.TunnelPort = a.ExternalPort
		}
		if info.Scheme == "" {
			info.Scheme = "http"
		}
		if localScheme == "" {
			localScheme = "http"
		}
		if pub, ok := s.PublicPorts[a.ExternalPort]; ok {
			info.PublicPort = pub
			if s.PublicIP != "" && info.Listening {
				info.DirectURL = fmt.Sprintf("%s://%s%s", info.Scheme, joinHostPort(s.PublicIP, pub), a.OpenPath)
			}
		}
		info.SSHOpenURL = fmt.Sprintf("%s://localhost:%d%s", localScheme, local, a.OpenPath)
		if len(missing) == 0 {
			info.SSHCommand = fmt.Sprintf("ssh -p %d root@%s -L %d:localhost:%d", sshPort, s.PublicIP, local, local)
		} else {
			info.SSHMissing = strings.Join(missing, " and ") + " unknown: run the SSH command your provider shows, adding -L " +
				fmt.Sprintf("%d:localhost:%d", local, local)
		}
		out = append(out, info)
	}
	return out
}
