package caddymodules

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/bootstatus"
	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/exposure"
	"github.com/instanceportal/portal/portalconfig"
)

func init() {
	caddy.RegisterModule(PortalBootStatus{})
	handlerDirective[PortalBootStatus]("portal_boot_status", "file_server")
}

// bootStatusFor is the handler that serves /api/boot with the entrypoint's
// markers.
func bootStatusFor(plan *portalconfig.Plan) PortalBootStatus {
	s := plan.Settings
	return PortalBootStatus{Config: bootstatus.Config{LockFile: s.ProvisioningLock, DoneFile: s.ProvisioningDone, FailedFile: s.ProvisioningFailed}}
}

// PortalBootStatus serves GET /api/boot: whether provisioning is running,
// complete or failed (with the entrypoint's code and message), read from
// the markers at each request (three stats; the page asks every few
// seconds at most).
//
// Caddyfile:
//
//	portal_boot_status [<matcher>] {
//	    lock_file   <path>
//	    done_file   <path>
//	    failed_file <path>
//	}
type PortalBootStatus struct {
	bootstatus.Config

	exposed *exposureCache
}

// bootAnswer is /api/boot: the markers, and the listeners that bypass the
// portal's authentication (package exposure), which the dashboard warns
// about.
type bootAnswer struct {
	bootstatus.Status
	Exposed []exposure.Exposure `json:"exposed"`
}

// CaddyModule returns the Caddy module information.
func (PortalBootStatus) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_boot_status", New: func() caddy.Module { return new(PortalBootStatus) }}
}

// Provision fills the defaults.
func (h *PortalBootStatus) Provision(caddy.Context) error {
	confdecl.FillDefaults(&h.Config, bootstatus.Default())
	h.exposed = newExposureCache()
	return nil
}

// Validate checks the paths.
func (h *PortalBootStatus) Validate() error {
	return moduleErr(h, h.Config.Check())
}

// ServeHTTP answers the status; it is terminal.
func (h *PortalBootStatus) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	return serveReadOnly(w, r, func() any { return bootAnswer{Status: bootstatus.Read(h.Config), Exposed: h.exposed.get()} })
}

// UnmarshalCaddyfile reads bootstatus.Config's JSON keys as options.
func (h *PortalBootStatus) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalConfigDirective(d, "portal_boot_status", &h.Config, nil)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PortalBootStatus)(nil)
	_ caddy.Validator             = (*PortalBootStatus)(nil)
	_ caddyhttp.MiddlewareHandler = (*PortalBootStatus)(nil)
	_ caddyfile.Unmarshaler       = (*PortalBootStatus)(nil)
)
