package caddymodules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/supervisor"
	"github.com/instanceportal/portal/vastauth"
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

// processesFor is the handler that serves the processes API on the portal server.
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
		return fmt.Errorf("portal_processes: %w", err)
	}
	h.svc = svc
	return nil
}

// Validate checks the settings.
func (h *PortalProcesses) Validate() error {
	if err := h.Config.Check(); err != nil {
		return fmt.Errorf("portal_processes: %w", err)
	}
	return nil
}

// maxProcessesBody bounds a POST body, which carries nothing ({} at most).
const maxProcessesBody = 1 << 10

func (h *PortalProcesses) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, processesAPIBase)
	if !ok || (rest != "" && rest[0] != '/') {
		if notOurSpelling(r.URL.Path, processesAPIBase) {
			return writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint: paths are lower case (" + processesAPIBase + ")"})
		}
		return next.ServeHTTP(w, r)
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
		return writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no processes endpoint %q", clipText(rest, 64))})
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
		return writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no processes endpoint %q: want start, stop or restart", clipText(action, 64))})
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, http.MethodPost)
	}
	if reason := vastauth.CrossSiteRefusal(r); reason != "" {
		return writeJSON(w, http.StatusForbidden, map[string]string{"error": reason})
	}
	if status, err := readEmptyJSONBody(w, r); err != nil {
		return writeJSON(w, status, map[string]string{"error": err.Error()})
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

// readEmptyJSONBody requires Content-Type: application/json and accepts an
// empty body or {}: the action is in the path.
func readEmptyJSONBody(w http.ResponseWriter, r *http.Request) (int, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/json" {
		return http.StatusUnsupportedMediaType, errors.New("want Content-Type: application/json (the body may be empty or {})")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxProcessesBody))
	if err != nil {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("body: larger than %d bytes", maxProcessesBody)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return 0, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var empty struct{}
	if err := dec.Decode(&empty); err != nil {
		return http.StatusBadRequest, fmt.Errorf("body: want {} or nothing: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return http.StatusBadRequest, errors.New("body: want one JSON object")
	}
	return 0, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PortalProcesses)(nil)
	_ caddy.Validator             = (*PortalProcesses)(nil)
	_ caddyhttp.MiddlewareHandler = (*PortalProcesses)(nil)
)
