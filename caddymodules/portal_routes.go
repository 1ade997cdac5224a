package caddymodules

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/google/jsonschema-go/jsonschema"

	"github.com/instanceportal/portal/apidoc"
	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/capabilities"
	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/idle"
	"github.com/instanceportal/portal/logstream"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/portallinks"
	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/supervisor"
	"github.com/instanceportal/portal/tunnels"
	"github.com/instanceportal/portal/vastauth"
)

func init() {
	caddy.RegisterModule(PortalOpenAPI{})
}

// portalRoute declares one route of the portal's own server, once: the
// paths it matches, the handlers that serve them, and the operations it
// documents in /openapi.json. portalServerRoutes builds the Caddy routes
// from the table and PortalOpenAPI the document, so a route cannot be
// served without being documented (TestPortalRoutesDocumented, and
// TestOpenAPIMatchesServedRoutes through the running binary).
type portalRoute struct {
	// Paths are Caddy path matcher patterns ("/api/logs/*"). Each must be
	// covered by an operation of Ops, and each operation by a pattern.
	Paths []string
	// Handlers builds the route's handlers from the plan. The route is
	// terminal: nothing after it runs for a path it matches.
	Handlers func(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) []json.RawMessage
	// Ops are the documented operations.
	Ops []apidoc.Op
}

// one wraps a single-handler builder.
func one(f func(*portalconfig.Plan, *[]caddyconfig.Warning) json.RawMessage) func(*portalconfig.Plan, *[]caddyconfig.Warning) []json.RawMessage {
	return func(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) []json.RawMessage {
		return []json.RawMessage{f(plan, warns)}
	}
}

// module builds a route's one handler: the module that build makes from
// the plan, named as its module ID names it (http.handlers.<name>), so
// that the name is written once, in CaddyModule.
func module[M caddy.Module](build func(*portalconfig.Plan) M) func(*portalconfig.Plan, *[]caddyconfig.Warning) []json.RawMessage {
	return func(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) []json.RawMessage {
		m := build(plan)
		return []json.RawMessage{caddyconfig.JSONModuleObject(m, "handler", m.CaddyModule().ID.Name(), warns)}
	}
}

// unset is the builder of a module that takes nothing from the plan: its
// zero value, every setting at its default.
func unset[M caddy.Module](*portalconfig.Plan) M {
	var m M
	return m
}

func (r portalRoute) caddyRoute(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) caddyhttp.Route {
	return terminal(pathRoute(warns, r.Paths, r.Handlers(plan, warns)...))
}

// portalRoutes is the table, in the order requests meet the routes, after
// the internal guard and before the dashboard's files (which answer what
// no route here claimed).
//
// To add a route: append one entry (its paths, its handler builder, its
// operations with their parameters and responses). Nothing else lists
// paths; the OpenAPI document and the tests follow.
func portalRoutes() []portalRoute {
	return []portalRoute{
		{
			Paths: []string{"/health"},
			Handlers: one(func(_ *portalconfig.Plan, w *[]caddyconfig.Warning) json.RawMessage {
				return staticJSON(`{"status":"ok"}`, w)
			}),
			Ops: []apidoc.Op{{Method: http.MethodGet, Path: "/health", Tag: "portal", Summary: "Liveness: the portal answers",
				Responses: []apidoc.Response{apidoc.OK("always", apidoc.Object(map[string]*jsonschema.Schema{"status": apidoc.Enum("", "ok")}, "status"))}}},
		},
		{
			Paths:    []string{openAPIPath},
			Handlers: module(unset[PortalOpenAPI]),
			Ops: []apidoc.Op{{Method: http.MethodGet, Path: openAPIPath, Tag: "portal", Summary: "This document: OpenAPI 3.1 of the portal's API",
				Responses: []apidoc.Response{apidoc.OK("the document", apidoc.Object(nil, "openapi", "paths"))}}},
		},
		{
			Paths:    []string{"/api/apps"},
			Handlers: module(appStatesFor),
			Ops: []apidoc.Op{{Method: http.MethodGet, Path: "/api/apps", Tag: "apps", Summary: "The apps of portal.yaml with their live state and URLs",
				Description: "state is running, starting, stopped, failed, not_configured or external (docs/processes.md)",
				Responses:   []apidoc.Response{apidoc.OK("one entry per app, in portal.yaml order", apidoc.Schema[[]appstate.State]())}}},
		},
		{
			Paths:    []string{processesAPIBase, processesAPIBase + "/*"},
			Handlers: module(processesFor),
			Ops:      processesOps(),
		},
		{
			Paths:    []string{"/api/links"},
			Handlers: module(linksFor),
			Ops: []apidoc.Op{{Method: http.MethodGet, Path: "/api/links", Tag: "portal", Summary: "The Tools & Help cards",
				Responses: []apidoc.Response{apidoc.OK("cards and what was left out", apidoc.Object(map[string]*jsonschema.Schema{
					"cards": apidoc.Schema[[]portallinks.Card](), "warnings": apidoc.Array(apidoc.String("")),
				}, "cards", "warnings"))}}},
		},
		{
			Paths:    []string{"/api/boot"},
			Handlers: module(bootStatusFor),
			Ops: []apidoc.Op{{Method: http.MethodGet, Path: "/api/boot", Tag: "boot", Summary: "Whether provisioning is running, complete or failed",
				Responses: []apidoc.Response{apidoc.OK("read from the entrypoint's markers, with the listeners exposed past the portal's authentication", apidoc.Schema[bootAnswer]())}}},
		},
		{
			Paths:    []string{"/api/idle", "/api/idle/postpone"},
			Handlers: module(unset[PortalIdleAPI]),
			Ops: []apidoc.Op{
				{Method: http.MethodGet, Path: "/api/idle", Tag: "idle", Summary: "Idle auto-stop: idle for how long, when the instance stops (docs/idle.md)",
					Responses: []apidoc.Response{apidoc.OK("enabled is false when PORTAL_IDLE_STOP_AFTER is unset", apidoc.Schema[idle.Status]())}},
				{Method: http.MethodPost, Path: "/api/idle/postpone", Tag: "idle", Summary: "Postpone the stop by one window",
					Description: "Content-Type: application/json; refused cross-site.",
					Body:        &apidoc.Body{Schema: apidoc.Object(nil)},
					Responses: []apidoc.Response{apidoc.OK("the new status", apidoc.Schema[idle.Status]()),
						apidoc.Err(http.StatusForbidden, "cross-site"),
						apidoc.Err(http.StatusConflict, "idle auto-stop is off")}},
			},
		},
		{
			Paths:    []string{"/api/provisioning"},
			Handlers: module(provisioningFor),
			Ops: []apidoc.Op{{Method: http.MethodGet, Path: "/api/provisioning", Tag: "boot", Summary: "Live progress of the provisioning run: phases, downloads, the running command",
				Responses: []apidoc.Response{apidoc.OK(`the provisioner's progress document; {"state":"none"} before any run`, apidoc.Schema[provstatus.Status]())}}},
		},
		{
			Paths:    []string{logsAPIBase, logsAPIBase + "/*"},
			Handlers: module(logstreamFor),
			Ops:      logsOps(),
		},
		{
			Paths:    []string{"/api/metrics"},
			Handlers: module(func(plan *portalconfig.Plan) GPUMetrics { return gpuMetricsFor(plan, "json") }),
			Ops: []apidoc.Op{{Method: http.MethodGet, Path: "/api/metrics", Tag: "metrics", Summary: "GPU, CPU, memory and disk figures (cached sample)",
				Responses: []apidoc.Response{apidoc.OK("absent figures are left out (docs/gpu_metrics.md)", apidoc.Schema[gpumetrics.Snapshot]())}}},
		},
		{
			Paths:    []string{"/metrics"},
			Handlers: module(func(plan *portalconfig.Plan) GPUMetrics { return gpuMetricsFor(plan, "prometheus") }),
			Ops: []apidoc.Op{{Method: http.MethodGet, Path: "/metrics", Tag: "metrics", Summary: "The same figures in the Prometheus text format (dcgm-exporter names)",
				Responses: []apidoc.Response{{Status: http.StatusOK, ContentType: "text/plain", Schema: apidoc.String("Prometheus exposition format 0.0.4")}}}},
		},
		{
			Paths:    []string{tunnelsAPIBase, tunnelsAPIBase + "/*"},
			Handlers: module(unset[TunnelsAPI]),
			Ops:      tunnelsOps(),
		},
		{
			Paths: []string{"/get-applications", "/get-direct-url/*", "/get-all-quick-tunnels", "/get-existing-quick-tunnel/*",
				"/get-named-tunnels", "/start-quick-tunnel/*", "/stop-quick-tunnel/*", "/refresh-quick-tunnel/*",
				"/supervisor/processes", "/supervisor/process/*", "/system-metrics", "/ws-logs", "/download-logs"},
			Handlers: module(referenceFor),
			Ops:      referenceOps(),
		},
		{
			Paths:    []string{capabilities.CapabilitiesPath, capabilities.CapabilitiesPath + "/*", capabilities.WellKnownPath},
			Handlers: module(capabilitiesFor),
			Ops:      capabilitiesOps(),
		},
		{
			Paths:    []string{capabilities.MCPPath},
			Handlers: module(mcpFor),
			Ops: []apidoc.Op{{Method: http.MethodPost, Path: capabilities.MCPPath, Tag: "agents",
				Summary:     "The MCP server (Streamable HTTP transport, stateless): JSON-RPC 2.0 messages",
				Description: "Tools and resources for agents (docs/agents.md). A request whose Origin is not this portal is refused.",
				Body:        &apidoc.Body{Required: true, Schema: apidoc.Object(map[string]*jsonschema.Schema{"jsonrpc": apidoc.Enum("", "2.0"), "method": apidoc.String("")}, "jsonrpc")},
				Responses: []apidoc.Response{
					apidoc.OK("a JSON-RPC response", apidoc.Object(map[string]*jsonschema.Schema{"jsonrpc": apidoc.Enum("", "2.0")}, "jsonrpc")),
					{Status: http.StatusAccepted, Description: "a notification, accepted", NoBody: true},
					apidoc.Err(http.StatusForbidden, "Origin is not this portal"),
				}}},
		},
		{
			Paths: []string{vastauth.HandoffPath},
			Handlers: one(func(_ *portalconfig.Plan, w *[]caddyconfig.Warning) json.RawMessage {
				return handoffElsewhereHandler(w)
			}),
			Ops: []apidoc.Op{{Method: http.MethodPost, Path: vastauth.HandoffPath, Tag: "auth", Summary: "A one-time link into another app's port",
				Description: "answered by vastauth on an external port it guards; here (the internal server) always 404",
				Responses:   []apidoc.Response{apidoc.Err(http.StatusNotFound, "no handoff tokens on the internal server")}}},
		},
		{
			Paths:    []string{dashboardInfoPath},
			Handlers: one(dashboardInfoHandler),
			Ops: []apidoc.Op{{Method: http.MethodGet, Path: dashboardInfoPath, Tag: "portal", Summary: "What the dashboard page needs to know",
				Responses: []apidoc.Response{apidoc.OK("", apidoc.Schema[dashboardInfo]())}}},
		},
		{
			Paths: []string{"/", "/index.html"},
			Handlers: func(_ *portalconfig.Plan, w *[]caddyconfig.Warning) []json.RawMessage {
				return dashboardIndexHandlers(w)
			},
			Ops: []apidoc.Op{
				{Method: http.MethodGet, Path: "/", Tag: "portal", Summary: "The dashboard page",
					Responses: []apidoc.Response{{Status: http.StatusOK, ContentType: "text/html", Schema: apidoc.String("")}}},
				{Method: http.MethodGet, Path: "/index.html", Tag: "portal", Summary: "The dashboard page",
					Responses: []apidoc.Response{{Status: http.StatusOK, ContentType: "text/html", Schema: apidoc.String("")}}},
			},
		},
	}
}

// logsAPIBase is where the log API answers.
const logsAPIBase = "/api/logs"

// openAPIPath is where the document is served.
const openAPIPath = "/openapi.json"

// portalRouteAt is the table's entry whose first path is p; it panics when
// there is none (a programming error, which every test meets).
func portalRouteAt(p string) portalRoute {
	for _, r := range portalRoutes() {
		if r.Paths[0] == p {
			return r
		}
	}
	panic("caddymodules: no portal route at " + p)
}

// portalAPIOps lists every documented operation, in table order.
func portalAPIOps() []apidoc.Op {
	var ops []apidoc.Op
	for _, r := range portalRoutes() {
		ops = append(ops, r.Ops...)
	}
	return ops
}

// portalAPIInfo heads the document.
var portalAPIInfo = apidoc.Info{
	Title:   "Instance Portal API",
	Version: "1",
	Description: "The API of the Instance Portal (the portal's own server: 127.0.0.1:11111 from inside the " +
		"instance, without credentials; the portal's external port with the instance token as Bearer from outside). " +
		"State-changing calls are POST and refused cross-site.",
}

var (
	openAPIOnce sync.Once
	openAPIDoc  []byte
	openAPIErr  error
)

// openAPIDocument is the document, built once from the table.
func openAPIDocument() ([]byte, error) {
	openAPIOnce.Do(func() {
		openAPIDoc, openAPIErr = apidoc.Document(portalAPIInfo, portalAPIOps())
	})
	return openAPIDoc, openAPIErr
}

// PortalOpenAPI serves GET /openapi.json: the OpenAPI 3.1 document of the
// portal's API, generated from the route table the server is built from.
type PortalOpenAPI struct{}

// CaddyModule returns the Caddy module information.
func (PortalOpenAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_openapi", New: func() caddy.Module { return new(PortalOpenAPI) }}
}

// ServeHTTP writes the document; it is terminal.
func (PortalOpenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	doc, err := openAPIDocument()
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(doc)
	return err
}

// Operations of the larger APIs.

func processesOps() []apidoc.Op {
	ops := []apidoc.Op{{Method: http.MethodGet, Path: processesAPIBase, Tag: "processes", Summary: "supervisord's programs",
		Responses: []apidoc.Response{
			apidoc.OK("every program", apidoc.Object(map[string]*jsonschema.Schema{"processes": apidoc.Schema[[]supervisor.Process]()}, "processes")),
			apidoc.Err(http.StatusServiceUnavailable, "supervisord is not running"),
		}}}
	for _, action := range []string{"start", "stop", "restart"} {
		ops = append(ops, apidoc.Op{Method: http.MethodPost, Path: processesAPIBase + "/{id}/" + action, Tag: "processes",
			Summary:     action + " a program and wait for the change",
			Description: "Content-Type: application/json, body empty or {}; refused cross-site; caddy and PORTAL_UNSTOPPABLE programs cannot be stopped or restarted (403).",
			Params:      []apidoc.Param{apidoc.PathParam("id", "the program's id (group:name, or the name)")},
			Body:        &apidoc.Body{Schema: apidoc.Object(nil)},
			Responses: []apidoc.Response{
				apidoc.OK("the program as left", apidoc.Object(map[string]*jsonschema.Schema{"process": apidoc.Schema[supervisor.Process]()}, "process")),
				apidoc.Err(http.StatusForbidden, "protected program, or cross-site"),
				apidoc.Err(http.StatusNotFound, "no such program"),
				apidoc.Err(http.StatusConflict, "already started / not running"),
				apidoc.Err(http.StatusUnsupportedMediaType, "not application/json"),
				apidoc.Err(http.StatusServiceUnavailable, "supervisord is not running"),
			}})
	}
	return ops
}

func tunnelsOps() []apidoc.Op {
	target := &apidoc.Body{Required: true, Schema: apidoc.Object(map[string]*jsonschema.Schema{
		"target": apidoc.String("a local URL, http://localhost:8080"),
	}, "target")}
	answer := apidoc.Object(map[string]*jsonschema.Schema{
		"tunnel": apidoc.Schema[tunnels.Status](), "warning": apidoc.String(""), "suggested_target": apidoc.String(""),
	})
	errs := []apidoc.Response{
		apidoc.Err(http.StatusBadRequest, "bad target or body"),
		apidoc.Err(http.StatusNotFound, "no such tunnel"),
		apidoc.Err(http.StatusUnsupportedMediaType, "not application/json"),
		apidoc.Err(http.StatusTooManyRequests, "creations too fast (Retry-After)"),
		apidoc.Err(http.StatusServiceUnavailable, "cloudflared missing"),
	}
	op := func(method, path, summary string, rs ...apidoc.Response) apidoc.Op {
		o := apidoc.Op{Method: method, Path: path, Tag: "tunnels", Summary: summary, Responses: rs}
		if method == http.MethodPost {
			o.Body = target
			o.Responses = append(o.Responses, errs...)
		}
		return o
	}
	return []apidoc.Op{
		op(http.MethodGet, tunnelsAPIBase, "Every tunnel (quick and named) with its state and URL",
			apidoc.OK("", apidoc.Object(map[string]*jsonschema.Schema{"tunnels": apidoc.Schema[[]tunnels.Status]()}, "tunnels"))),
		op(http.MethodPost, tunnelsAPIBase, "Create a quick tunnel to target (201, or 200 if it exists)",
			apidoc.OK("it existed", answer), apidoc.Response{Status: http.StatusCreated, Schema: answer, Description: "created"},
			apidoc.Err(http.StatusConflict, "max_tunnels reached")),
		op(http.MethodPost, tunnelsAPIBase+"/stop", "Stop the tunnel to target", apidoc.OK("", answer)),
		op(http.MethodPost, tunnelsAPIBase+"/refresh", "Restart the tunnel to target for a new URL", apidoc.OK("", answer)),
	}
}

func logsOps() []apidoc.Op {
	file := apidoc.QueryParam("file", "a bare *.log name of the log directory; repeat for several; none: every file", apidoc.String(""))
	tail := apidoc.QueryParam("tail", "lines of history per file, 0-5000 (default 200)", apidoc.Integer(""))
	bad := apidoc.Err(http.StatusBadRequest, "bad file name or parameter")
	files := []apidoc.Response{apidoc.OK("", apidoc.Object(map[string]*jsonschema.Schema{
		"files": apidoc.Schema[[]logstream.FileInfo](), "max_files": apidoc.Integer(""),
	}, "files"))}
	return []apidoc.Op{
		{Method: http.MethodGet, Path: logsAPIBase, Tag: "logs", Summary: "The *.log files of the log directory (as /api/logs/files)", Responses: files},
		{Method: http.MethodGet, Path: logsAPIBase + "/files", Tag: "logs", Summary: "The *.log files of the log directory", Responses: files},
		{Method: http.MethodGet, Path: logsAPIBase + "/ws", Tag: "logs", Summary: "Live log events over a WebSocket (docs/logstream.md)",
			Params:    []apidoc.Param{file, tail},
			Responses: []apidoc.Response{{Status: http.StatusSwitchingProtocols, NoBody: true}, bad}},
		{Method: http.MethodGet, Path: logsAPIBase + "/stream", Tag: "logs", Summary: "Live log events as Server-Sent Events",
			Params:    []apidoc.Param{file, tail},
			Responses: []apidoc.Response{{Status: http.StatusOK, ContentType: "text/event-stream", Schema: apidoc.String("")}, bad}},
		{Method: http.MethodGet, Path: logsAPIBase + "/download", Tag: "logs", Summary: "One log file, or every log as a .tar.gz",
			Params: []apidoc.Param{
				apidoc.QueryParam("file", "one bare *.log name", apidoc.String("")),
				apidoc.QueryParam("all", "1: all of /var/log's logs, not only the portal's directory", apidoc.String("")),
			},
			Responses: []apidoc.Response{{Status: http.StatusOK, ContentType: "application/octet-stream", Schema: apidoc.String("")}, bad}},
	}
}

// referenceOps are the reference image's API paths (PortalReference).
func referenceOps() []apidoc.Op {
	detail := func(status int, desc string) apidoc.Response {
		return apidoc.Response{Status: status, Description: desc,
			Schema: apidoc.Object(map[string]*jsonschema.Schema{"detail": apidoc.String("")}, "detail")}
	}
	str, num := apidoc.String(""), apidoc.Integer("")
	obj := apidoc.Object
	type props = map[string]*jsonschema.Schema
	target := apidoc.PathParam("target", "the local URL the tunnel serves, http://localhost:8080 (its // may be sent as /)")
	tunnelURL := apidoc.OK("", obj(props{"tunnel_url": str}, "tunnel_url"))
	pairs := apidoc.OK("", apidoc.Array(obj(props{"targetUrl": str, "tunnelUrl": str}, "targetUrl", "tunnelUrl")))
	refused := detail(http.StatusForbidden, "cross-site request, or a protected program")
	usage := obj(props{"total": num, "used": num, "percent": apidoc.Schema[float64]()}, "total", "used", "percent")
	op := func(method, path, summary string, params []apidoc.Param, rs ...apidoc.Response) apidoc.Op {
		return apidoc.Op{Method: method, Path: path, Tag: "reference", Summary: summary, Params: params, Responses: rs,
			Description: "The reference image's path and shape (its portal.py), served by the same services as the /api routes."}
	}
	var ops []apidoc.Op
	ops = append(ops,
		op(http.MethodGet, "/get-applications", "portal.yaml's apps keyed by name, with target_url and mapped_port", nil,
			apidoc.OK("", &jsonschema.Schema{Type: "object", AdditionalProperties: obj(props{
				"name": str, "hostname": str, "external_port": num, "internal_port": num, "open_path": str, "target_url": str, "mapped_port": str,
			}, "name", "hostname", "external_port", "internal_port", "open_path", "target_url", "mapped_port")})),
		op(http.MethodGet, "/get-direct-url/{port}", "scheme://PUBLIC_IPADDR:VAST_TCP_PORT_<port>",
			[]apidoc.Param{apidoc.PathParam("port", "a container port")},
			apidoc.OK("", obj(props{"result": str}, "result")), detail(http.StatusNotFound, "address or port mapping unknown")),
		op(http.MethodGet, "/get-all-quick-tunnels", "Quick tunnels that have a URL", nil, pairs),
		op(http.MethodGet, "/get-existing-quick-tunnel/{target}", "The URL of the quick tunnel to target, as text", []apidoc.Param{target},
			apidoc.Response{Status: http.StatusOK, ContentType: "text/html", Schema: str}, detail(http.StatusNotFound, "no such tunnel")),
		op(http.MethodGet, "/get-named-tunnels", "The named tunnel's ingress (CF_TUNNEL_TOKEN)", nil, pairs,
			detail(http.StatusNotFound, "no named tunnel")),
		op(http.MethodPost, "/start-quick-tunnel/{target}", "Start (or find) the quick tunnel to target; answers once it has a URL",
			[]apidoc.Param{target}, tunnelURL, detail(http.StatusBadRequest, "bad target"), refused),
		op(http.MethodPost, "/stop-quick-tunnel/{target}", "Stop the quick tunnel to target", []apidoc.Param{target},
			apidoc.OK("", obj(props{"message": str}, "message")), detail(http.StatusNotFound, "no such tunnel"), refused),
		op(http.MethodPost, "/refresh-quick-tunnel/{target}", "Restart the quick tunnel to target for a new URL", []apidoc.Param{target},
			tunnelURL, detail(http.StatusNotFound, "no such tunnel"), refused),
		op(http.MethodGet, "/supervisor/processes", "supervisord's programs, skipped ones left out", nil,
			apidoc.OK("", apidoc.Array(obj(props{
				"name": str, "group": str, "state": str, "description": str, "pid": num, "start": num, "now": num, "unstoppable": apidoc.Boolean(""),
			}, "name", "group", "state", "description", "pid", "start", "now", "unstoppable"))),
			detail(http.StatusInternalServerError, "supervisord could not be asked")),
	)
	for _, action := range []string{"start", "stop", "restart"} {
		ops = append(ops, op(http.MethodPost, "/supervisor/process/{name}/"+action, action+" a program",
			[]apidoc.Param{apidoc.PathParam("name", "the program's name")},
			apidoc.OK("", obj(props{"status": apidoc.Enum("", "ok"), "name": str, "action": apidoc.Enum("", action)}, "status", "name", "action")),
			detail(http.StatusBadRequest, "supervisord's fault"), refused, detail(http.StatusNotFound, "no such program")))
	}
	ops = append(ops,
		op(http.MethodGet, "/system-metrics", "RAM, disk, CPU and GPU summary in the reference's shape", nil,
			apidoc.OK("", obj(props{
				"ram": usage, "disk": usage, "environment": apidoc.Enum("", "container", "host"),
				"cpu":    obj(props{"percent": apidoc.Schema[float64](), "count": num}, "percent", "count"),
				"volume": usage,
				"gpu":    obj(props{"count": num, "avg_load_percent": apidoc.Schema[float64](), "memory_unit": apidoc.Enum("", "MB")}, "count", "memory_unit"),
			}, "ram", "disk", "cpu", "gpu", "environment"))),
		op(http.MethodGet, "/ws-logs", "Live logs over a WebSocket (our event format, docs/logstream.md)", nil,
			apidoc.Response{Status: http.StatusSwitchingProtocols, NoBody: true}),
		op(http.MethodGet, "/download-logs", "Every log as one archive (.tar.gz)", nil,
			apidoc.Response{Status: http.StatusOK, ContentType: "application/gzip", Schema: str}),
	)
	return ops
}

// capabilitiesOps are the capability manifest's (PortalCapabilities).
func capabilitiesOps() []apidoc.Op {
	manifest := apidoc.OK("the manifest (docs/agents.md)", apidoc.Schema[capabilities.Manifest]())
	include := apidoc.QueryParam("include", "metrics,packages: add live metrics and package versions", apidoc.String(""))
	return []apidoc.Op{
		{Method: http.MethodGet, Path: capabilities.CapabilitiesPath, Tag: "capabilities", Summary: "The capability manifest of this instance",
			Params: []apidoc.Param{include}, Responses: []apidoc.Response{manifest}},
		{Method: http.MethodGet, Path: capabilities.WellKnownPath, Tag: "capabilities", Summary: "The capability manifest (well-known path)",
			Params: []apidoc.Param{include}, Responses: []apidoc.Response{manifest}},
		{Method: http.MethodGet, Path: capabilities.ServicesPath, Tag: "capabilities", Summary: "The manifest's services",
			Responses: []apidoc.Response{apidoc.OK("", apidoc.Schema[[]capabilities.Service]())}},
		{Method: http.MethodGet, Path: capabilities.EndpointsPath, Tag: "capabilities", Summary: "The OpenAI-compatible endpoints found",
			Responses: []apidoc.Response{apidoc.OK("", apidoc.Schema[[]capabilities.OpenAIEndpoint]())}},
		{Method: http.MethodPost, Path: capabilities.ProvisionPath, Tag: "capabilities", Summary: "Start a provisioning run; answers at once with where to follow it",
			Body: &apidoc.Body{Required: true, Schema: apidoc.Schema[capabilities.ProvisionRequest]()},
			Responses: []apidoc.Response{
				{Status: http.StatusAccepted, Description: "started", Schema: apidoc.Object(map[string]*jsonschema.Schema{
					"status": apidoc.Enum("", "started"), "detail": apidoc.String(""), "log_file": apidoc.String(""),
					"progress_url": apidoc.String(""), "manifest": apidoc.String(""),
				}, "status", "progress_url")},
				apidoc.Err(http.StatusBadRequest, "bad request body"),
				apidoc.Err(http.StatusForbidden, "cross-site"),
				apidoc.Err(http.StatusConflict, "a run is in progress"),
				apidoc.Err(http.StatusUnsupportedMediaType, "not application/json"),
			}},
	}
}
