package caddymodules

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/supervisor"
)

func init() {
	caddy.RegisterModule(PortalProcesses{})
}

// processesAPIBase is where the processes API answers.
const processesAPIBase = "/api/processes"

// supervisorConfigFor is what the processes and apps handlers are told
// about supervisord: the plan's settings, written out explicitly.
func supervisorConfigFor(plan *portalconfig.Plan) supervisor.Config {
	s := plan.Settings
	return supervisor.Config{Socket: s.SupervisorSocket, SkipDir: s.SkipDir, Unstoppable: s.Unstoppable}
}

// processesFor is the handler that serves the processes API on the portal
// server.
func processesFor(plan *portalconfig.Plan) PortalProcesses {
	return PortalProcesses{Config: supervisorConfigFor(plan)}
}

// PortalProcesses serves supervisord's programs over HTTP
// (docs/processes.md):
//
//	GET  /api/processes                      {"processes": [process…]}
//	POST /api/processes/{id}/start|stop|restart  {"process": process}
//
// The POST calls wait for the state change, bounded by wait_timeout. They
// are refused cross-site (Sec-Fetch-Site, Origin) and without
// Content-Type: application/json, which a cross-site form cannot send.
// caddy and the unstoppable programs cannot be stopped or restarted (403).
// Errors are JSON {"error": "…"}; supervisord's fault string is passed
// through; a missing supervisord is 503 "supervisord is not running".
type PortalProcesses struct {
	supervisor.Config

	svc    *supervisor.Service
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (PortalProcesses) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_processes", New: func() caddy.Module { return new(PortalProcesses) }}
}

// Provision builds the client; it connects to nothing.
func (h *PortalProcesses) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	svc, err := supervisor.New(h.Config)
	if err != nil {
		return moduleErr(h, err)
	}
	h.svc = svc
	return nil
}

// Validate checks the settings.
func (h *PortalProcesses) Validate() error {
	return moduleErr(h, h.Config.Check())
}

func (h *PortalProcesses) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := apiRest(r.URL.Path, processesAPIBase)
	if !ok {
		return notUnderBase(w, r, next, processesAPIBase)
	}
	rest = strings.Trim(rest, "/")
	if rest == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		list, err := h.svc.List(r.Context())
		if err != nil {
			return h.writeError(w, r, "list", supervisor.Process{}, err)
		}
		return writeJSON(w, http.StatusOK, map[string]any{"processes": list})
	}
	id, action, ok := strings.Cut(rest, "/")
	if !ok || id == "" || strings.Contains(action, "/") {
		return writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no processes endpoint %q", clipText(rest, 64)))
	}
	var do func(context.Context, string) (supervisor.Process, error)
	switch action {
	case "start":
		do = h.svc.Start
	case "stop":
		do = h.svc.Stop
	case "restart":
		do = h.svc.Restart
	default:
		return writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no processes endpoint %q: want start, stop or restart", clipText(action, 64)))
	}
	if refused, err := refuseAction(w, r); refused {
		return err
	}
	p, err := do(r.Context(), id)
	if err != nil {
		return h.writeError(w, r, action, p, err)
	}
	h.logger.Info("program "+action+" from the portal", zap.String("program", p.ID), zap.String("state", p.State))
	return writeJSON(w, http.StatusOK, map[string]any{"process": p})
}

// writeError answers a failed call with the status its cause calls for
// (docs/processes.md), the message, and the program as it was left.
func (h *PortalProcesses) writeError(w http.ResponseWriter, r *http.Request, action string, p supervisor.Process, err error) error {
	if r.Context().Err() != nil {
		return nil // the client went away; nobody reads an answer
	}
	body := map[string]any{"error": err.Error()}
	if p.Name != "" {
		body["process"] = p
	}
	var (
		fault *supervisor.Fault
		code  = http.StatusBadGateway
	)
	switch {
	case errors.Is(err, supervisor.ErrNotRunning):
		code = http.StatusServiceUnavailable
		body["error"] = supervisor.ErrNotRunning.Error()
		// How to start one (not the socket's path itself).
		body["start_command"] = supervisor.StartCommand(h.svc.Socket())
	case errors.Is(err, supervisor.ErrNoSuchProcess):
		code = http.StatusNotFound
	case errors.Is(err, supervisor.ErrProtected):
		code = http.StatusForbidden
	case errors.Is(err, supervisor.ErrStillChanging):
		code = http.StatusGatewayTimeout
	case errors.As(err, &fault):
		body["fault"] = map[string]any{"code": fault.Code, "string": fault.String}
		switch fault.Code {
		case supervisor.FaultAlreadyStarted, supervisor.FaultNotRunning:
			code = http.StatusConflict
		case supervisor.FaultBadName:
			code = http.StatusNotFound
		case supervisor.FaultShutdownState:
			code = http.StatusServiceUnavailable
		}
	}
	h.logger.Debug("processes API request refused", zap.String("action", action), zap.Int("status", code), zap.Error(err))
	return writeJSON(w, code, body)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PortalProcesses)(nil)
	_ caddy.Validator             = (*PortalProcesses)(nil)
	_ caddyhttp.MiddlewareHandler = (*PortalProcesses)(nil)
)
