package caddymodules

import (
	"encoding/json"
	"sort"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/portalconfig"
)

// PortalContext is what a module needs to contribute to the adapted config:
// the validated apps, the environment settings, and the adapter's warning
// list (append to it through caddyconfig.JSON / JSONModuleObject).
type PortalContext struct {
	Config   *portalconfig.Config
	Settings *portalconfig.Settings
	// Exposed lists the apps Caddy listens for (proxied, external port exposed).
	Exposed  []portalconfig.App
	Warnings *[]caddyconfig.Warning
}

// portalRouteSource contributes routes to the internal portal server
// (127.0.0.1:<portal internal port>). Each module file registers its own in
// init, so adding a feature never edits the adapter.
type portalRouteSource struct {
	order int
	name  string
	build func(pc PortalContext) []caddyhttp.Route
}

// portalAppSource contributes a top-level Caddy app (e.g. "tunnels").
type portalAppSource struct {
	name  string
	build func(pc PortalContext) (json.RawMessage, bool)
}

var (
	portalRouteSources []portalRouteSource
	portalAppSources   []portalAppSource
)

// registerPortalRoutes adds routes to the internal portal server. Lower order
// comes first; routes of equal order keep registration order by name.
// Call only from init.
func registerPortalRoutes(order int, name string, build func(pc PortalContext) []caddyhttp.Route) {
	portalRouteSources = append(portalRouteSources, portalRouteSource{order, name, build})
	sort.SliceStable(portalRouteSources, func(i, j int) bool {
		a, b := portalRouteSources[i], portalRouteSources[j]
		if a.order != b.order {
			return a.order < b.order
		}
		return a.name < b.name
	})
}

// registerPortalApp adds a top-level app to every adapted portal config;
// build returns false to leave the app out. Call only from init.
func registerPortalApp(name string, build func(pc PortalContext) (json.RawMessage, bool)) {
	portalAppSources = append(portalAppSources, portalAppSource{name, build})
	sort.SliceStable(portalAppSources, func(i, j int) bool { return portalAppSources[i].name < portalAppSources[j].name })
}

// pathRoute is a route matching the given path patterns (Caddy path matcher
// syntax: "/api/logs/*") and running the handlers, in order.
func pathRoute(warns *[]caddyconfig.Warning, paths []string, handlers ...json.RawMessage) caddyhttp.Route {
	return caddyhttp.Route{
		MatcherSetsRaw: caddyhttp.RawMatcherSets{{"path": caddyconfig.JSON(paths, warns)}},
		HandlersRaw:    handlers,
	}
}
