package caddymodules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/bootstatus"
	"github.com/instanceportal/portal/capabilities"
	"github.com/instanceportal/portal/logtail"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/redact"
	"github.com/instanceportal/portal/supervisor"
	"github.com/instanceportal/portal/vastauth"
)

func init() {
	caddy.RegisterModule(PortalMCP{})
}

// mcpFor is the handler that serves the MCP server (its path is the route
// table's).
func mcpFor(plan *portalconfig.Plan) PortalMCP {
	return PortalMCP{AgentServices: agentServicesFor(plan), Capabilities: capabilitiesFor(plan)}
}

// PortalMCP serves a Model Context Protocol server at /mcp (Streamable
// HTTP transport, stateless, built on github.com/modelcontextprotocol/go-sdk)
// for AI agents: tools over the same services as the REST API (one code
// path, one set of protections) and the manifest and agent guide as
// resources (docs/agents.md). It sits behind the portal's authentication
// like every route of the internal server: the instance token as Bearer
// through an external port, none on 127.0.0.1. A request whose Origin is
// not this portal is refused (the MCP specification's DNS-rebinding rule;
// the internal guard already refuses a foreign Host). Each tool call is
// logged with its arguments, secrets redacted, and its outcome.
type PortalMCP struct {
	AgentServices
	// Capabilities is /capabilities's handler: the manifest and the
	// provisioning launcher.
	Capabilities PortalCapabilities `json:"capabilities"`

	handler http.Handler
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (PortalMCP) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_mcp", New: func() caddy.Module { return new(PortalMCP) }}
}

// Provision provisions the services and builds the MCP server; it
// connects to nothing.
func (h *PortalMCP) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.AgentServices.Provision(ctx); err != nil {
		return moduleErr(h, err)
	}
	if err := h.Capabilities.Provision(ctx); err != nil {
		return moduleErr(h, err)
	}
	srv := h.newServer()
	h.handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		// No session state to keep across requests or reloads.
		Stateless:    true,
		JSONResponse: true,
		// The internal guard (hostguard) judges Host: a request through
		// the external port arrives from 127.0.0.1 with the instance's
		// public Host, which the SDK's own check would refuse.
		DisableLocalhostProtection: true,
	})
	return nil
}

// Validate checks the parts.
func (h *PortalMCP) Validate() error {
	return errors.Join(h.AgentServices.Validate(), h.Capabilities.Validate())
}

// Cleanup releases the pooled parts; safe after a failed Provision.
func (h *PortalMCP) Cleanup() error {
	return errors.Join(h.AgentServices.Cleanup(), h.Capabilities.Cleanup())
}

func (h *PortalMCP) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if reason := vastauth.CrossSiteRefusal(r); reason != "" {
		h.logger.Debug("MCP request refused", zap.String("reason", reason))
		return writeJSONError(w, http.StatusForbidden, reason)
	}
	h.handler.ServeHTTP(w, r)
	return nil
}

// MCP resource URIs.
const (
	mcpManifestURI = "vast://capabilities"
	mcpGuideURI    = "vast://agents/base.md"
)

// The tools' inputs. Field docs are the schema descriptions agents read.
type (
	mcpNoInput       struct{}
	mcpManifestInput struct {
		IncludeMetrics  bool `json:"include_metrics,omitempty" jsonschema:"add live GPU/CPU/memory/disk figures"`
		IncludePackages bool `json:"include_packages,omitempty" jsonschema:"add installed package versions (slower)"`
	}
	mcpLogsInput struct {
		File   string `json:"file,omitempty" jsonschema:"one log file name such as jupyter.log; empty: every file"`
		Lines  int    `json:"lines,omitempty" jsonschema:"last lines per file (default 100, at most 2000)"`
		Search string `json:"search,omitempty" jsonschema:"keep only lines containing this text (case-insensitive)"`
		Since  string `json:"since,omitempty" jsonschema:"only files written since: an RFC 3339 time or a duration such as 15m"`
	}
	mcpProcessInput struct {
		Name   string `json:"name" jsonschema:"the program's name or id, as list_processes shows it"`
		Action string `json:"action" jsonschema:"start, stop or restart"`
	}
	mcpTunnelInput struct {
		Action string `json:"action" jsonschema:"list, create, stop or refresh"`
		Target string `json:"target,omitempty" jsonschema:"the local URL to publish, such as http://localhost:8080 (not for list)"`
	}
)

func (h *PortalMCP) newServer() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "instance-portal", Title: "Instance Portal", Version: "1"}, &mcp.ServerOptions{
		Instructions: "Tools to operate this GPU instance: its capability manifest, services, logs, processes, tunnels, " +
			"metrics, provisioning and boot status. Read the resource " + mcpGuideURI + " first.",
	})
	addMCPTool(h, srv, "get_capabilities", "The capability manifest of this instance: hardware, Python environments, services and their URLs, OpenAI-compatible endpoints, provisioning, auth model.",
		func(ctx context.Context, in mcpManifestInput) (any, error) {
			return h.Capabilities.cache.Manifest(ctx, in.IncludeMetrics, in.IncludePackages)
		})
	addMCPTool(h, srv, "list_services", "The apps of portal.yaml with their live state (running, starting, stopped, failed, not_configured, external), internal, direct and tunnel URLs.",
		func(ctx context.Context, _ mcpNoInput) (any, error) { return h.services(ctx) })
	addMCPTool(h, srv, "read_logs", fmt.Sprintf("The last lines of one log file or of every one (terminal escapes removed), optionally only lines containing a text; at most %d lines per file and %d KiB in all.", logtail.MaxLines, logtail.MaxBytes>>10),
		func(_ context.Context, in mcpLogsInput) (any, error) { return h.readLogs(in, time.Now()) })
	addMCPTool(h, srv, "list_processes", "supervisord's programs with their state; protected ones cannot be stopped or restarted.",
		func(ctx context.Context, _ mcpNoInput) (any, error) {
			list, err := h.Processes.svc.List(ctx)
			return map[string]any{"processes": list}, err
		})
	addMCPTool(h, srv, "control_process", "Start, stop or restart a supervisord program and wait for the change. caddy and the protected programs cannot be stopped or restarted.",
		func(ctx context.Context, in mcpProcessInput) (any, error) {
			do := map[string]func(context.Context, string) (supervisor.Process, error){
				"start": h.Processes.svc.Start, "stop": h.Processes.svc.Stop, "restart": h.Processes.svc.Restart,
			}[in.Action]
			if do == nil {
				return nil, fmt.Errorf("action %q: want start, stop or restart", clipText(in.Action, 32))
			}
			p, err := do(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			return map[string]any{"process": p}, nil
		})
	addMCPTool(h, srv, "tunnels", "Cloudflare tunnels: list them, or create, stop or refresh the quick tunnel to a local URL (a public trycloudflare.com URL).",
		func(_ context.Context, in mcpTunnelInput) (any, error) { return h.tunnels(in) })
	addMCPTool(h, srv, "get_metrics", "A snapshot of GPU (per board), CPU, memory and disk figures.",
		func(ctx context.Context, _ mcpNoInput) (any, error) {
			return h.Metrics.collector.Latest(ctx).Snapshot, nil
		})
	addMCPTool(h, srv, "start_provisioning", "Start a provisioning run (a manifest URL, inline manifest YAML, or pip / git / download lists) in the background, as POST /capabilities/provision; follow it with get_provisioning.",
		func(_ context.Context, in capabilities.ProvisionRequest) (any, error) {
			if err := in.Validate(); err != nil {
				return nil, err
			}
			code, body := h.Capabilities.startProvisioning(in)
			if code >= 400 {
				return nil, fmt.Errorf("%v", body["error"])
			}
			return body, nil
		})
	addMCPTool(h, srv, "get_provisioning", "The progress of the latest provisioning run: phases, downloads, commands.",
		func(context.Context, mcpNoInput) (any, error) { return h.Provisioning.status() })
	addMCPTool(h, srv, "get_boot_status", "Whether the boot's provisioning is running, complete or failed, with the entrypoint's code and message.",
		func(context.Context, mcpNoInput) (any, error) { return bootstatus.Read(h.Boot.Config), nil })

	srv.AddResource(&mcp.Resource{URI: mcpManifestURI, Name: "capabilities", Title: "Capability manifest", MIMEType: "application/json",
		Description: "What GET /capabilities answers"},
		func(ctx context.Context, _ *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			m, err := h.Capabilities.cache.Manifest(ctx, false, false)
			if err != nil {
				return nil, err
			}
			b, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				return nil, err
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: mcpManifestURI, MIMEType: "application/json", Text: string(b)}}}, nil
		})
	// The base guide in AGENTS_DIR, read from the environment as
	// `caddy portal capabilities --boot` reads it (capabilities owns both names).
	guide := filepath.Join(portalconfig.OSEnviron().Get(capabilities.AgentsDirEnv, capabilities.DefaultAgentsDir), capabilities.BaseGuide)
	srv.AddResource(&mcp.Resource{URI: mcpGuideURI, Name: "agent-guide", Title: "Agent guide", MIMEType: "text/markdown",
		Description: "How to work on this instance: " + guide},
		func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			b, err := readBounded(guide, capabilities.MaxGuideBytes)
			if err != nil {
				return nil, err
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: mcpGuideURI, MIMEType: "text/markdown", Text: string(b)}}}, nil
		})
	return srv
}

// addMCPTool registers a tool whose answer is run's result as JSON text,
// and logs each call: the tool, its arguments with secrets redacted, the
// outcome and the time taken.
func addMCPTool[In any](h *PortalMCP, srv *mcp.Server, name, desc string, run func(context.Context, In) (any, error)) {
	mcp.AddTool(srv, &mcp.Tool{Name: name, Description: desc}, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
		start := time.Now()
		out, err := run(ctx, in)
		var raw json.RawMessage
		if req != nil && req.Params != nil {
			raw = req.Params.Arguments
		}
		fields := []zap.Field{zap.String("tool", name), zap.String("arguments", redactArguments(raw)), zap.Duration("took", time.Since(start))}
		if err != nil {
			h.logger.Info("MCP tool call failed", append(fields, zap.Error(err))...)
			return nil, nil, err
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			h.logger.Info("MCP tool call failed", append(fields, zap.Error(err))...)
			return nil, nil, err
		}
		h.logger.Info("MCP tool call", fields...)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil, nil
	})
}

// secretKey names an argument whose value is never logged.
var secretKey = regexp.MustCompile(`(?i)token|password|secret|auth|key|credential|yaml`)

// redactArguments is a tool call's arguments for the log: values under a
// secret-looking key hidden, URL credentials masked (redact.URLs), each
// string clipped.
func redactArguments(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "(not JSON)"
	}
	var walk func(key string, v any) any
	walk = func(key string, v any) any {
		if key != "" && secretKey.MatchString(key) {
			return "[redacted]"
		}
		switch v := v.(type) {
		case string:
			return clipText(redact.URLs(v), 200)
		case []any:
			for i := range v {
				v[i] = walk("", v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = walk(k, v[k])
			}
		}
		return v
	}
	b, _ := json.Marshal(walk("", v))
	return string(b)
}

// mcpService is one app as list_services shows it.
type mcpService struct {
	Key          string `json:"key"`
	Name         string `json:"name"`
	State        string `json:"state"`
	Program      string `json:"program,omitempty"`
	InternalURL  string `json:"internal_url"`
	ExternalPort int    `json:"external_port"`
	DirectURL    string `json:"direct_url,omitempty"`
	TunnelURL    string `json:"tunnel_url,omitempty"`
}

// services is list_services: /api/apps's states, with the quick tunnel's
// URL of each app's tunnel target.
func (h *PortalMCP) services(ctx context.Context) ([]mcpService, error) {
	states, _ := h.Apps.tracker.States(ctx) // without supervisord: states from probes, as /api/apps
	tunnelURL := map[int]string{}
	if m := h.Tunnels.manager(); m != nil {
		for _, st := range m.List() {
			if st.URL == "" {
				continue
			}
			if i := strings.LastIndexByte(st.Target, ':'); i >= 0 {
				var port int
				if _, err := fmt.Sscanf(st.Target[i+1:], "%d", &port); err == nil {
					tunnelURL[port] = st.URL
				}
			}
		}
	}
	out := make([]mcpService, 0, len(states))
	for _, s := range states {
		out = append(out, mcpService{
			Key: s.Key, Name: s.Name, State: s.State, Program: s.Program,
			InternalURL:  fmt.Sprintf("http://%s:%d%s", s.Hostname, s.InternalPort, s.OpenPath),
			ExternalPort: s.ExternalPort, DirectURL: s.DirectURL, TunnelURL: tunnelURL[s.TunnelPort],
		})
	}
	return out, nil
}

// readLogs is read_logs: names checked by the log service (as the log API
// checks them), then read through os.Root by logtail.
func (h *PortalMCP) readLogs(in mcpLogsInput, now time.Time) (any, error) {
	svc := h.Logs.pooled.Value
	var since time.Time
	if in.Since != "" {
		if d, err := time.ParseDuration(in.Since); err == nil {
			since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, in.Since); err == nil {
			since = t
		} else {
			return nil, fmt.Errorf("since %q: want an RFC 3339 time or a duration such as 15m", clipText(in.Since, 40))
		}
	}
	if in.File != "" {
		if err := svc.CheckFile(in.File); err != nil {
			return nil, err
		}
	}
	files, err := svc.Files()
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, f := range files {
		if (in.File == "" || f.Name == in.File) && !f.MTime.Before(since) {
			names = append(names, f.Name)
		}
	}
	root, err := os.OpenRoot(svc.Dir())
	if err != nil {
		return nil, fmt.Errorf("log directory %s: %w", svc.Dir(), err)
	}
	defer root.Close()
	got, err := logtail.Read(root, names, logtail.Options{Lines: in.Lines, Search: in.Search})
	if err != nil {
		return nil, err
	}
	return map[string]any{"directory": svc.Dir(), "files": got}, nil
}

// tunnels is the tunnels tool, through tunnelAction like the tunnels API.
func (h *PortalMCP) tunnels(in mcpTunnelInput) (any, error) {
	m := h.Tunnels.manager()
	if m == nil {
		return nil, errors.New("tunnels app not running")
	}
	if in.Action == "list" || in.Action == "" {
		return map[string]any{"tunnels": m.List()}, nil
	}
	res := tunnelAction(m, h.Tunnels.apps, h.logger, in.Action, in.Target)
	if res.Err != nil {
		return nil, res.Err
	}
	return res.body(), nil
}

// readBounded reads at most limit bytes of path.
func readBounded(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(limit)))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PortalMCP)(nil)
	_ caddy.Validator             = (*PortalMCP)(nil)
	_ caddy.CleanerUpper          = (*PortalMCP)(nil)
	_ caddyhttp.MiddlewareHandler = (*PortalMCP)(nil)
)
