package caddymodules

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/supervisor"
	"github.com/instanceportal/portal/tunnels"
	"github.com/instanceportal/portal/vastauth"
)

func init() {
	caddy.RegisterModule(PortalReference{})
}

// referenceFor is the handler that serves the reference's API paths
// (docs/agents.md).
func referenceFor(plan *portalconfig.Plan) PortalReference {
	return PortalReference{AgentServices: agentServicesFor(plan)}
}

// PortalReference serves the API paths of the reference image's portal
// (its portal-aio/portal/portal.py), which its agent guide and users'
// scripts call, with the reference's methods and JSON shapes, from our
// services: /get-applications, /get-direct-url/{port},
// /get-all-quick-tunnels, /get-existing-quick-tunnel/{target},
// /get-named-tunnels, /start-|stop-|refresh-quick-tunnel/{target},
// /supervisor/processes, /supervisor/process/{name}/start|stop|restart,
// /system-metrics, /ws-logs and /download-logs. Errors are the
// reference's {"detail": "…"}. POSTs are refused cross-site; protected
// programs cannot be stopped or restarted.
type PortalReference struct {
	AgentServices

	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (PortalReference) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_reference", New: func() caddy.Module { return new(PortalReference) }}
}

// Provision provisions the services.
func (h *PortalReference) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	return moduleErr(h, h.AgentServices.Provision(ctx))
}

// tunnelURLWait bounds how long a tunnel start waits for its URL: the
// reference answers with the URL, which cloudflared learns in seconds.
const tunnelURLWait = 30 * time.Second

func (h *PortalReference) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	p := r.URL.Path
	post := func() bool {
		if r.Method != http.MethodPost {
			_ = methodNotAllowed(w, http.MethodPost)
			return false
		}
		if reason := vastauth.CrossSiteRefusal(r); reason != "" {
			_ = referenceError(w, http.StatusForbidden, reason)
			return false
		}
		return true
	}
	get := func() bool {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			_ = methodNotAllowed(w, "GET, HEAD")
			return false
		}
		return true
	}
	switch {
	case p == "/get-applications":
		if get() {
			return writeJSON(w, http.StatusOK, h.applications())
		}
	case strings.HasPrefix(p, "/get-direct-url/"):
		if get() {
			port, err := strconv.Atoi(strings.TrimPrefix(p, "/get-direct-url/"))
			if err != nil || port < 1 || port > 65535 {
				return referenceError(w, http.StatusUnprocessableEntity, "port: want a number from 1 to 65535")
			}
			u := h.directURL(port)
			if u == "" {
				return referenceError(w, http.StatusNotFound, fmt.Sprintf("Direct URL unavailable: PUBLIC_IPADDR or VAST_TCP_PORT_%d not set", port))
			}
			return writeJSON(w, http.StatusOK, map[string]string{"result": u})
		}
	case p == "/get-all-quick-tunnels":
		if get() {
			return h.withTunnels(w, func(m *tunnels.Manager) error {
				out := []map[string]string{}
				for _, st := range m.List() {
					if st.Type == tunnels.Quick && st.URL != "" {
						out = append(out, map[string]string{"targetUrl": st.Target, "tunnelUrl": st.URL})
					}
				}
				return writeJSON(w, http.StatusOK, out)
			})
		}
	case p == "/get-named-tunnels":
		if get() {
			return h.withTunnels(w, func(m *tunnels.Manager) error {
				for _, st := range m.List() {
					if st.Type != tunnels.Named {
						continue
					}
					out := []map[string]string{}
					for _, rule := range st.Ingress {
						if strings.HasPrefix(rule.Service, "http") && rule.Hostname != "" {
							out = append(out, map[string]string{"targetUrl": rule.Service, "tunnelUrl": "https://" + rule.Hostname})
						}
					}
					return writeJSON(w, http.StatusOK, out)
				}
				return referenceError(w, http.StatusNotFound, "Tunnel config not found")
			})
		}
	case strings.HasPrefix(p, "/get-existing-quick-tunnel/"):
		if get() {
			target := referenceTarget(p, "/get-existing-quick-tunnel/")
			return h.withTunnels(w, func(m *tunnels.Manager) error {
				want, err := tunnels.NormalizeTarget(target)
				if err == nil {
					for _, st := range m.List() {
						if st.Type == tunnels.Quick && st.Target == want && st.URL != "" {
							// The reference answers the bare URL as text/html.
							w.Header().Set("Content-Type", "text/html; charset=utf-8")
							w.Header().Set("Cache-Control", "no-store")
							_, err := w.Write([]byte(st.URL))
							return err
						}
					}
				}
				return referenceError(w, http.StatusNotFound, "Tunnel not found")
			})
		}
	case strings.HasPrefix(p, "/start-quick-tunnel/"), strings.HasPrefix(p, "/stop-quick-tunnel/"), strings.HasPrefix(p, "/refresh-quick-tunnel/"):
		if post() {
			action, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "-")
			target := referenceTarget(p, "/"+action+"-quick-tunnel/")
			return h.withTunnels(w, func(m *tunnels.Manager) error { return h.quickTunnel(w, r, m, action, target) })
		}
	case p == "/supervisor/processes":
		if get() {
			list, err := h.Processes.svc.List(r.Context())
			if err != nil {
				return referenceError(w, http.StatusInternalServerError, "Failed to communicate with supervisor: "+err.Error())
			}
			return writeJSON(w, http.StatusOK, referenceProcesses(list, time.Now()))
		}
	case strings.HasPrefix(p, "/supervisor/process/"):
		name, action, ok := strings.Cut(strings.TrimPrefix(p, "/supervisor/process/"), "/")
		if !ok || name == "" || (action != "start" && action != "stop" && action != "restart") {
			return referenceError(w, http.StatusNotFound, "Not Found: want /supervisor/process/{name}/start|stop|restart")
		}
		if post() {
			return h.processAction(w, r, name, action)
		}
	case p == "/system-metrics":
		if get() {
			return writeJSON(w, http.StatusOK, referenceMetrics(h.Metrics.collector.Latest(r.Context()).Snapshot))
		}
	case p == "/ws-logs":
		// Our log WebSocket (every followed file), at the reference's path.
		r2 := r.Clone(r.Context())
		r2.URL.Path = logsAPIBase + "/ws"
		return h.Logs.ServeHTTP(w, r2, nil)
	case p == "/download-logs":
		// Every log (the portal's and /var/log's), as one archive.
		r2 := r.Clone(r.Context())
		r2.URL.Path = logsAPIBase + "/download"
		r2.URL.RawQuery = "all=1"
		return h.Logs.ServeHTTP(w, r2, nil)
	default:
		return referenceError(w, http.StatusNotFound, "Not Found")
	}
	return nil
}

// referenceError is the reference's (FastAPI's) error body.
func referenceError(w http.ResponseWriter, code int, detail string) error {
	return writeJSON(w, code, map[string]string{"detail": detail})
}

func (h *PortalReference) withTunnels(w http.ResponseWriter, f func(*tunnels.Manager) error) error {
	m := h.Tunnels.manager()
	if m == nil {
		return referenceError(w, http.StatusServiceUnavailable, "tunnels app not running")
	}
	return f(m)
}

// schemeOneSlash is a URL whose "//" a client or proxy merged into "/".
var schemeOneSlash = regexp.MustCompile(`^(?i)(https?):/([^/])`)

// referenceTarget is the target URL that follows prefix in the path, as
// the reference takes it ({target_url:path}).
func referenceTarget(p, prefix string) string {
	return schemeOneSlash.ReplaceAllString(strings.TrimPrefix(p, prefix), "$1://$2")
}

// quickTunnel starts, stops or refreshes through tunnelAction, as the
// tunnels API does, and answers as the reference: {"tunnel_url"} once the
// URL is known (waiting up to tunnelURLWait), or {"message"} for a stop.
func (h *PortalReference) quickTunnel(w http.ResponseWriter, r *http.Request, m *tunnels.Manager, action, target string) error {
	if action == "start" {
		action = "create"
	}
	res := tunnelAction(m, h.Tunnels.apps, h.logger, action, target)
	if res.Err != nil {
		if res.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(res.RetryAfter))
		}
		return referenceError(w, res.Code, res.Err.Error())
	}
	if action == "stop" {
		return writeJSON(w, http.StatusOK, map[string]string{"message": "Quick tunnel stopped successfully"})
	}
	st, err := waitTunnelURL(r.Context(), m, res.Status.Target, tunnelURLWait)
	if err != nil {
		return referenceError(w, http.StatusGatewayTimeout, err.Error())
	}
	body := map[string]string{"tunnel_url": st.URL}
	if res.Warning != "" {
		body["warning"] = res.Warning
	}
	return writeJSON(w, http.StatusOK, body)
}

// waitTunnelURL polls the tunnel to target until it has a URL, fails, or
// wait passes.
func waitTunnelURL(ctx context.Context, m *tunnels.Manager, target string, wait time.Duration) (tunnels.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var st tunnels.Status
		for _, s := range m.List() {
			if s.Type == tunnels.Quick && s.Target == target {
				st = s
			}
		}
		switch {
		case st.URL != "":
			return st, nil
		case st.Type == "":
			return st, fmt.Errorf("tunnel to %s: gone", target)
		case st.State == tunnels.StateFailed || st.State == tunnels.StateStopped:
			return st, fmt.Errorf("tunnel to %s: %s: %s", target, st.State, st.LastError)
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("tunnel to %s: no URL after %v (state %s)", target, wait, st.State)
		case <-tick.C:
		}
	}
}

// processAction runs start, stop or restart through the same service as
// the processes API (protected programs refused there).
func (h *PortalReference) processAction(w http.ResponseWriter, r *http.Request, name, action string) error {
	do := map[string]func(context.Context, string) (supervisor.Process, error){
		"start": h.Processes.svc.Start, "stop": h.Processes.svc.Stop, "restart": h.Processes.svc.Restart,
	}[action]
	p, err := do(r.Context(), name)
	if err != nil {
		code := http.StatusInternalServerError
		var fault *supervisor.Fault
		switch {
		case errors.Is(err, supervisor.ErrProtected):
			code = http.StatusForbidden
		case errors.Is(err, supervisor.ErrNoSuchProcess):
			code = http.StatusNotFound
		case errors.As(err, &fault):
			code = http.StatusBadRequest
		}
		return referenceError(w, code, err.Error())
	}
	h.logger.Info("program "+action+" from the portal (reference path)", zap.String("program", p.ID), zap.String("state", p.State))
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "name": name, "action": action})
}

// applications is /get-applications: portal.yaml's apps keyed by name with
// target_url and mapped_port added, as the reference hydrates them. The
// reference also appends the caller's auth cookie to open_path; we never
// put a credential in an answer.
func (h *PortalReference) applications() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, a := range h.Apps.Apps {
		key := a.Key
		if key == "" {
			key = a.Name
		}
		mapped := ""
		if pub, ok := h.PublicPorts[a.ExternalPort]; ok {
			mapped = strconv.Itoa(pub)
		}
		scheme := a.Scheme
		if scheme == "" {
			scheme = h.Scheme
		}
		out[key] = map[string]any{
			"name": a.Name, "hostname": a.Hostname, "external_port": a.ExternalPort, "internal_port": a.InternalPort,
			"open_path": a.OpenPath, "target_url": fmt.Sprintf("%s://%s:%d", scheme, a.Hostname, a.ExternalPort),
			"mapped_port": mapped,
		}
	}
	return out
}

// referenceProcesses is /supervisor/processes: the reference's fields
// (start and now in Unix seconds), skipped programs left out as there.
func referenceProcesses(list []supervisor.Process, now time.Time) []map[string]any {
	out := []map[string]any{}
	for _, p := range list {
		if p.Skipped {
			continue
		}
		var start int64
		if t, err := time.Parse(time.RFC3339, p.StartedAt); err == nil {
			start = t.Unix()
		}
		out = append(out, map[string]any{
			"name": p.Name, "group": p.Group, "state": p.State, "description": p.Description,
			"pid": p.PID, "start": start, "now": now.Unix(), "unstoppable": p.Protected,
		})
	}
	return out
}

// referenceMetrics is /system-metrics in the reference's shape, from our
// snapshot: ram, disk, cpu, environment, volume (a separate $WORKSPACE
// filesystem) and the GPU summary (memory in MB).
func referenceMetrics(s *gpumetrics.Snapshot) map[string]any {
	usage := func(total, used *uint64) map[string]any {
		m := map[string]any{"total": uint64(0), "used": uint64(0), "percent": 0.0}
		if total != nil && used != nil && *total > 0 {
			m["total"], m["used"], m["percent"] = *total, *used, float64(*used)*100/float64(*total)
		}
		return m
	}
	out := map[string]any{
		"ram":         usage(s.System.MemoryLimitBytes, s.System.MemoryUsedBytes),
		"disk":        map[string]any{"total": uint64(0), "used": uint64(0), "percent": 0.0},
		"environment": "container",
	}
	if s.System.MemorySource == "proc" {
		out["environment"] = "host"
	}
	cpu := map[string]any{"percent": 0.0, "count": 1}
	if s.System.CPUPercent != nil {
		cpu["percent"] = float64(int(*s.System.CPUPercent*10)) / 10
	}
	if s.System.CPULimitCores != nil && *s.System.CPULimitCores >= 1 {
		cpu["count"] = int(*s.System.CPULimitCores)
	}
	out["cpu"] = cpu
	for _, d := range s.System.Disks {
		total, used := d.TotalBytes, d.UsedBytes
		m := usage(&total, &used)
		switch d.Label {
		case "root":
			out["disk"] = m
		case "workspace":
			m["path"] = d.Path
			out["volume"] = m
		}
	}
	gpu := map[string]any{"count": len(s.GPUs), "avg_load_percent": 0.0, "memory_used": 0.0, "memory_total": 0.0, "memory_percent": 0.0, "memory_unit": "MB"}
	if len(s.GPUs) > 0 {
		var load, used, total float64
		loads, mem := 0, false
		for _, g := range s.GPUs {
			if g.UtilizationPercent != nil {
				load += *g.UtilizationPercent
				loads++
			}
			if g.MemoryTotalBytes != nil && g.MemoryUsedBytes != nil {
				total += float64(*g.MemoryTotalBytes) / (1 << 20)
				used += float64(*g.MemoryUsedBytes) / (1 << 20)
				mem = true
			}
		}
		if loads > 0 {
			gpu["avg_load_percent"] = load / float64(loads)
		}
		if mem {
			gpu["memory_used"], gpu["memory_total"] = used, total
			if total > 0 {
				gpu["memory_percent"] = used * 100 / total
			}
		} else {
			gpu["memory_used"], gpu["memory_total"], gpu["memory_percent"] = nil, nil, nil
		}
		if s.Backend == "rocm-smi" {
			gpu["amd_count"] = len(s.GPUs)
		} else {
			gpu["nvidia_count"] = len(s.GPUs)
		}
	} else if s.Reason != "" {
		gpu["errors"] = map[string]string{"nvidia": s.Reason}
	}
	out["gpu"] = gpu
	return out
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PortalReference)(nil)
	_ caddy.Validator             = (*PortalReference)(nil)
	_ caddy.CleanerUpper          = (*PortalReference)(nil)
	_ caddyhttp.MiddlewareHandler = (*PortalReference)(nil)
)
