package caddymodules

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/bootstatus"
	"github.com/instanceportal/portal/capabilities"
	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/tunnels"
)

func init() {
	caddy.RegisterModule(PortalCapabilities{})
}

// capabilitiesFor is the handler that serves the capability manifest and its
// parts (its paths are the route table's).
func capabilitiesFor(plan *portalconfig.Plan) PortalCapabilities {
	s := plan.Settings
	return PortalCapabilities{
		Apps:   appstate.PlanConfig(plan),
		Scheme: plan.Scheme,
		Markers: bootstatus.Config{
			LockFile: s.ProvisioningLock, DoneFile: s.ProvisioningDone, FailedFile: s.ProvisioningFailed,
		},
		Workspace:            s.Workspace,
		ProvisioningStateDir: s.ProvisionerStateDir,
	}
}

// PortalCapabilities serves the capability manifest (docs/agents.md):
//
//	GET  /capabilities[?include=metrics,packages]   the manifest
//	GET  /.well-known/vast-capabilities             the same
//	GET  /capabilities/services                     its services list
//	GET  /capabilities/endpoints                    its endpoints_openai list
//	POST /capabilities/provision                    start a provisioning run (202)
//
// The manifest is built by package capabilities and reused for two
// seconds. The POST is refused cross-site and without Content-Type:
// application/json, as the processes API's are, and with 409 while a run
// is in progress.
type PortalCapabilities struct {
	// Apps is the app list and supervisord's settings, as /api/apps has them.
	Apps appstate.Config `json:"apps"`
	// Scheme is the scheme of the portal's ports, as the plan decided it.
	Scheme string `json:"scheme,omitempty"`
	// Markers are the entrypoint's provisioning markers.
	Markers bootstatus.Config `json:"markers,omitzero"`
	// Workspace is $WORKSPACE, for the metrics' volume figure.
	Workspace string `json:"workspace,omitempty"`
	// ProvisioningStateDir is the provisioner's state directory
	// (PROVISIONER_STATE_DIR), where a POST's run writes its progress.
	// Default: provstatus.DefaultStateDir.
	ProvisioningStateDir string `json:"provisioning_state_dir,omitempty"`

	cache    *capabilities.Cached
	launcher *capabilities.Launcher
	metrics  *GPUMetrics
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (PortalCapabilities) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_capabilities", New: func() caddy.Module { return new(PortalCapabilities) }}
}

// launchers keeps one provisioning launcher per state directory across
// config reloads: the one-run-at-a-time rule must outlive a reload.
var (
	launchersMu sync.Mutex
	launchers   = map[string]*capabilities.Launcher{}
)

func launcherFor(stateDir, lock string) *capabilities.Launcher {
	launchersMu.Lock()
	defer launchersMu.Unlock()
	key := stateDir + "\x00" + lock
	if l, ok := launchers[key]; ok {
		return l
	}
	l := &capabilities.Launcher{StateDir: stateDir, LockFile: lock}
	launchers[key] = l
	return l
}

// proberOnce is the OpenAI probe shared by every config, so that its cache
// survives reloads.
var proberOnce = sync.OnceValue(func() *capabilities.Prober {
	return capabilities.NewProber(capabilities.ProberConfig{})
})

// packagesOnce is the package-version reader shared by every config.
var packagesOnce = sync.OnceValue(func() *capabilities.PackageProber { return &capabilities.PackageProber{} })

// Provision builds the sources; it connects to nothing.
func (h *PortalCapabilities) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	tracker, err := appstate.New(h.Apps)
	if err != nil {
		return moduleErr(h, err)
	}
	// The shared collector of /api/metrics (same settings, same pool key).
	h.metrics = &GPUMetrics{Config: gpumetrics.Config{Format: "json", Workspace: h.Workspace}}
	if err := h.metrics.Provision(ctx); err != nil {
		h.metrics = nil
		return moduleErr(h, err)
	}
	app, err := loadTunnelsApp(ctx)
	if err != nil {
		return moduleErr(h, err)
	}
	stateDir := h.ProvisioningStateDir
	if stateDir == "" {
		stateDir = provstatus.DefaultStateDir
	}
	lock := h.Markers.LockFile
	if lock == "" {
		lock = bootstatus.Default().LockFile
	}
	h.launcher = launcherFor(stateDir, lock)
	h.cache = &capabilities.Cached{
		Sources: capabilities.Sources{
			Apps:     tracker,
			Metrics:  h.metrics.collector,
			Tunnels:  tunnelLister{app.Manager},
			OpenAI:   proberOnce(),
			Packages: packagesOnce(),
		},
		Options: capabilities.Options{Scheme: h.Scheme, Markers: h.Markers, ProvisioningStateDir: stateDir},
	}
	return nil
}

// tunnelLister lists the tunnels of the app's current manager.
type tunnelLister struct{ manager func() *tunnels.Manager }

func (t tunnelLister) List() []tunnels.Status {
	if m := t.manager(); m != nil {
		return m.List()
	}
	return nil
}

// Validate checks the settings.
func (h *PortalCapabilities) Validate() error {
	return moduleErr(h, h.Apps.Check())
}

// Cleanup releases the shared metrics collector. Safe after a failed
// Provision.
func (h *PortalCapabilities) Cleanup() error {
	if h.metrics == nil {
		return nil
	}
	return h.metrics.Cleanup()
}

func (h *PortalCapabilities) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	var part string
	switch r.URL.Path {
	case capabilities.CapabilitiesPath, capabilities.WellKnownPath:
		part = "all"
	case capabilities.ServicesPath:
		part = "services"
	case capabilities.EndpointsPath:
		part = "endpoints"
	case capabilities.ProvisionPath:
		return h.serveProvision(w, r)
	default:
		return writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no capabilities endpoint %q", clipText(r.URL.Path, 64)))
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	metrics, packages := false, false
	if part == "all" {
		metrics, packages = capabilities.ParseInclude(r.URL.Query().Get("include"))
	}
	m, err := h.cache.Manifest(r.Context(), metrics, packages)
	if err != nil {
		if r.Context().Err() != nil {
			return nil
		}
		return writeJSONError(w, http.StatusInternalServerError, err.Error())
	}
	switch part {
	case "services":
		return writeJSON(w, http.StatusOK, m.Services)
	case "endpoints":
		return writeJSON(w, http.StatusOK, m.EndpointsOpenAI)
	}
	return writeJSON(w, http.StatusOK, m)
}

// serveProvision starts a provisioning run and answers at once.
func (h *PortalCapabilities) serveProvision(w http.ResponseWriter, r *http.Request) error {
	if refused, err := refuseStateChange(w, r); refused {
		return err
	}
	body, status, err := readJSONBody(w, r, capabilities.MaxProvisionBody, "")
	if err != nil {
		return writeJSONError(w, status, err.Error())
	}
	req, err := capabilities.DecodeProvisionRequest(bytes.NewReader(body))
	if err != nil {
		return writeJSONError(w, http.StatusBadRequest, err.Error())
	}
	code, answer := h.startProvisioning(req)
	return writeJSON(w, code, answer)
}

// startProvisioning starts a run: the one code path of POST
// /capabilities/provision and the MCP provision tool. It answers the HTTP
// status and body the API gives.
func (h *PortalCapabilities) startProvisioning(req capabilities.ProvisionRequest) (int, map[string]any) {
	started, err := h.launcher.Start(req)
	switch {
	case errors.Is(err, capabilities.ErrBusy):
		return http.StatusConflict, map[string]any{"error": err.Error(), "progress_url": capabilities.ProgressPath}
	case err != nil:
		h.logger.Error("provisioning not started", zap.Error(err))
		return http.StatusInternalServerError, map[string]any{"error": err.Error()}
	}
	h.logger.Info("provisioning started from the portal", zap.String("manifest", started.Manifest), zap.Int("pid", started.PID))
	return http.StatusAccepted, map[string]any{
		"status":       "started",
		"detail":       "the provisioner runs in the background; follow it at " + capabilities.ProgressPath,
		"log_file":     capabilities.ProvisioningLog,
		"progress_url": capabilities.ProgressPath,
		"manifest":     started.Manifest,
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PortalCapabilities)(nil)
	_ caddy.Validator             = (*PortalCapabilities)(nil)
	_ caddy.CleanerUpper          = (*PortalCapabilities)(nil)
	_ caddyhttp.MiddlewareHandler = (*PortalCapabilities)(nil)
)
