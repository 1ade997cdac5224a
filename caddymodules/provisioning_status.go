package caddymodules

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/provstatus"
)

func init() {
	caddy.RegisterModule(PortalProvisioning{})
	handlerDirective[PortalProvisioning]("portal_provisioning", "file_server")
}

// provisioningFor is the handler that serves /api/provisioning with the
// provisioner's live progress, on the portal's own server (behind its guard
// and vastauth, as /api/boot).
func provisioningFor(plan *portalconfig.Plan) PortalProvisioning {
	return PortalProvisioning{StateDir: plan.Settings.ProvisionerStateDir}
}

// PortalProvisioning serves GET /api/provisioning: the progress document
// the provisioner (`caddy portal provision`) keeps in its state directory
// (package provstatus: phases with state and timing, each download's
// bytes, total, rate and ETA, the running command's last lines), read at
// each request. Before any run it answers {"state":"none"}. The document
// holds no secret: the provisioner masks every URL before writing it.
//
// Caddyfile:
//
//	portal_provisioning [<matcher>] {
//	    state_dir <path>
//	}
type PortalProvisioning struct {
	// StateDir is the provisioner's state directory
	// (PROVISIONER_STATE_DIR). Default: /.provisioner_state
	StateDir string `json:"state_dir,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (PortalProvisioning) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_provisioning", New: func() caddy.Module { return new(PortalProvisioning) }}
}

// Provision fills the default.
func (h *PortalProvisioning) Provision(caddy.Context) error {
	if h.StateDir == "" {
		h.StateDir = provstatus.DefaultStateDir
	}
	return nil
}

// Validate checks the path.
func (h *PortalProvisioning) Validate() error {
	if !filepath.IsAbs(h.StateDir) {
		return fmt.Errorf("portal_provisioning: state_dir %q: want an absolute path", h.StateDir)
	}
	return nil
}

// provisioningNone is the answer before any run.
var provisioningNone = provstatus.Status{State: "none", Phases: []provstatus.Phase{}, Downloads: []provstatus.Download{}}

// ServeHTTP answers the document; it is terminal.
func (h *PortalProvisioning) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	st, err := h.status()
	if err != nil {
		return writeJSONError(w, http.StatusInternalServerError, err.Error())
	}
	return writeJSON(w, http.StatusOK, st)
}

// status is the progress document as the API answers it (also the MCP
// get_provisioning tool's answer).
func (h *PortalProvisioning) status() (provstatus.Status, error) {
	st, err := provstatus.Read(provstatus.Path(h.StateDir))
	switch {
	case errors.Is(err, provstatus.ErrNone):
		st = provisioningNone
	case err != nil:
		return st, fmt.Errorf("reading the provisioning progress: %w", err)
	}
	if st.Phases == nil {
		st.Phases = []provstatus.Phase{}
	}
	if st.Downloads == nil {
		st.Downloads = []provstatus.Download{}
	}
	return st, nil
}

// UnmarshalCaddyfile reads the state_dir option, with the shared walker
// (unmarshalConfigBlock) every directive's options go through.
func (h *PortalProvisioning) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalConfigDirective(d, "portal_provisioning", h, nil)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PortalProvisioning)(nil)
	_ caddy.Validator             = (*PortalProvisioning)(nil)
	_ caddyhttp.MiddlewareHandler = (*PortalProvisioning)(nil)
	_ caddyfile.Unmarshaler       = (*PortalProvisioning)(nil)
)
