package caddymodules

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/caddyserver/caddy/v2"

	"github.com/instanceportal/portal/portalconfig"
)

// AgentServices are the services behind the portal's REST handlers, held
// by the handlers that serve the same data another way (the reference's
// API paths, the MCP server). Each part is the very handler module the
// REST route uses, provisioned the same way, so both reach the same
// service: the pooled log service and metrics collector, the supervisord
// client with its protected programs, the app-state tracker, the tunnels
// app. One code path, one set of protections.
type AgentServices struct {
	// Apps is /api/apps's handler: the app list and its state tracker.
	Apps PortalApps `json:"apps"`
	// Processes is /api/processes's handler: supervisord.
	Processes PortalProcesses `json:"processes"`
	// Metrics is /api/metrics's handler (the pooled collector).
	Metrics GPUMetrics `json:"metrics"`
	// Logs is /api/logs's handler (the pooled log service).
	Logs LogStream `json:"logs"`
	// Boot is /api/boot's handler (the entrypoint's markers).
	Boot PortalBootStatus `json:"boot"`
	// Tunnels is /api/tunnels's handler (the tunnels app).
	Tunnels TunnelsAPI `json:"tunnels"`
	// Provisioning is /api/provisioning's handler (the progress document).
	Provisioning PortalProvisioning `json:"provisioning"`
	// PublicIP is PUBLIC_IPADDR; PublicPorts maps a container port to
	// its public port (VAST_TCP_PORT_<p>), for direct URLs.
	PublicIP    string      `json:"public_ip,omitempty"`
	PublicPorts map[int]int `json:"public_ports,omitempty"`
	// Scheme is the portal's own scheme (https only when TLS is on).
	Scheme string `json:"scheme,omitempty"`
}

// agentServicesFor is every part configured from the plan, exactly as the
// REST routes configure theirs.
func agentServicesFor(plan *portalconfig.Plan) AgentServices {
	return AgentServices{
		Apps:         appStatesFor(plan),
		Processes:    PortalProcesses{Config: supervisorConfigFor(plan)},
		Metrics:      gpuMetricsFor(plan, "json"),
		Logs:         logstreamFor(plan),
		Boot:         bootStatusFor(plan),
		Provisioning: PortalProvisioning{StateDir: plan.Settings.ProvisionerStateDir},
		PublicIP:     plan.Settings.PublicIP,
		PublicPorts:  plan.Settings.PublicPorts,
		Scheme:       plan.Scheme,
	}
}

// Provision provisions each part as Caddy would provision the REST
// handler.
func (s *AgentServices) Provision(ctx caddy.Context) error {
	for _, p := range []struct {
		name string
		p    caddy.Provisioner
	}{{"apps", &s.Apps}, {"processes", &s.Processes}, {"metrics", &s.Metrics}, {"logs", &s.Logs}, {"boot", &s.Boot}, {"tunnels", &s.Tunnels}, {"provisioning", &s.Provisioning}} {
		if err := p.p.Provision(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if s.Scheme == "" {
		s.Scheme = "http"
	}
	return nil
}

// Validate checks each part.
func (s *AgentServices) Validate() error {
	return errors.Join(s.Apps.Validate(), s.Processes.Validate(), s.Metrics.Validate(), s.Logs.Validate(), s.Boot.Validate(), s.Provisioning.Validate())
}

// Cleanup releases the pooled parts; safe after a failed Provision.
func (s *AgentServices) Cleanup() error {
	return errors.Join(s.Metrics.Cleanup(), s.Logs.Cleanup())
}

// directURL is scheme://PUBLIC_IPADDR:<public port of port>, or "" when
// either is unknown. The scheme is that of the app served on port when
// one is, else the portal's.
func (s *AgentServices) directURL(port int) string {
	pub, ok := s.PublicPorts[port]
	if !ok || s.PublicIP == "" {
		return ""
	}
	scheme := s.Scheme
	for _, a := range s.Apps.Apps {
		if a.ExternalPort == port && a.Scheme != "" {
			scheme = a.Scheme
			break
		}
	}
	return scheme + "://" + s.PublicIP + ":" + strconv.Itoa(pub)
}
