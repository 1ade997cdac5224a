package caddymodules

import (
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/portalconfig"
)

func init() {
	caddy.RegisterModule(PortalApps{})
}

// appStatesFor is the handler that serves /api/apps live: the plan's apps
// (what the adapter used to answer statically) with each one's state.
func appStatesFor(plan *portalconfig.Plan) PortalApps {
	return PortalApps{Config: appstate.Config{Config: supervisorConfigFor(plan), Apps: keyedApps(plan)}}
}

// keyedApps pairs each AppInfo with its portal.yaml key.
func keyedApps(plan *portalconfig.Plan) []appstate.App { return appstate.PlanConfig(plan).Apps }

// PortalApps serves GET /api/apps: every app of its list with its live
// state (running, starting, stopped, failed, not_configured, external),
// judged from supervisord and a cached TCP probe of the app's port that the
// portal makes itself (docs/processes.md). Without supervisord the states
// come from the probes alone; that is not an error.
type PortalApps struct {
	appstate.Config

	tracker *appstate.Tracker
	logger  *zap.Logger
	// lastErr keeps a failing supervisord from filling the log at every
	// poll: each new error is logged once.
	lastErr *lastError
}

type lastError struct {
	mu  sync.Mutex
	msg string
}

// CaddyModule returns the Caddy module information.
func (PortalApps) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_apps", New: func() caddy.Module { return new(PortalApps) }}
}

// Provision builds the tracker; it connects to nothing.
func (h *PortalApps) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	tracker, err := appstate.New(h.Config)
	if err != nil {
		return moduleErr(h, err)
	}
	h.tracker = tracker
	h.lastErr = &lastError{}
	latestAppStates.Store(tracker) // /metrics reports the states (gpu_metrics_extras.go)
	return nil
}

// Validate checks the settings.
func (h *PortalApps) Validate() error {
	return moduleErr(h, h.Config.Check())
}

// ServeHTTP answers the list; it is terminal.
func (h *PortalApps) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	return serveReadOnly(w, r, func() any {
		states, supErr := h.tracker.States(r.Context())
		h.noteSupervisorError(supErr)
		return states
	})
}

func (h *PortalApps) noteSupervisorError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	h.lastErr.mu.Lock()
	changed := msg != h.lastErr.msg
	h.lastErr.msg = msg
	h.lastErr.mu.Unlock()
	if changed && err != nil {
		h.logger.Warn("app states from probes only: supervisord could not be asked", zap.Error(err))
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PortalApps)(nil)
	_ caddy.Validator             = (*PortalApps)(nil)
	_ caddyhttp.MiddlewareHandler = (*PortalApps)(nil)
)
