// Package portalconfig reads the portal's configuration — portal.yaml, the
// PORTAL_CONFIG string and the environment — validates it, and plans what the
// Caddy configuration must contain. It never imports Caddy: the caddymodules
// adapter turns the Plan into Caddy's typed structs.
//
// "The reference" (or "the reference image") in this package means Vast.ai's
// public base image, whose portal this one replaces: its Python Caddyfile
// generator, boot scripts and the supervisor wrapper scripts its templates
// are written against. Where it is named, we keep its observable behaviour.
package portalconfig

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// App is one entry of portal.yaml's `applications` map (or one `|`-separated
// entry of PORTAL_CONFIG).
type App struct {
	// Key is the map key in portal.yaml ("Jupyter"), or "entry N" for
	// PORTAL_CONFIG, where N counts from 1.
	Key string `json:"key"`
	// Name is the display name; it defaults to Key.
	Name string `json:"name"`
	// Hostname is the upstream host the app listens on (usually localhost).
	Hostname string `json:"hostname"`
	// ExternalPort is the port Caddy listens on for this app.
	ExternalPort int `json:"external_port"`
	// InternalPort is the port the app itself listens on.
	InternalPort int `json:"internal_port"`
	// OpenPath is the path the dashboard's "open" button appends ("/").
	OpenPath string `json:"open_path"`
	// Scheme is what a link-only app serves on its port itself: "http" or
	// "https" (Jupyter launched with the instance certificate). It is our
	// addition to portal.yaml; PORTAL_CONFIG has no slot for it. A proxied
	// app's scheme is the portal's own (Plan.Scheme). Default: http.
	Scheme string `json:"scheme,omitempty"`
	// Line is the line of the entry in portal.yaml (0 for PORTAL_CONFIG).
	Line int `json:"-"`
}

// Proxied reports whether Caddy proxies the app. An entry whose external and
// internal ports are equal is a link only: the app listens on that port itself.
func (a App) Proxied() bool { return a.ExternalPort != a.InternalPort }

// Upstream is the dial address of the app, hostname:internal_port.
func (a App) Upstream() string {
	return joinHostPort(a.Hostname, a.InternalPort)
}

// IsPortal reports whether the entry is the Instance Portal itself, whose
// internal port is served by this binary rather than by another program.
func (a App) IsPortal() bool {
	return a.Name == PortalAppName || a.Key == PortalAppName
}

// PortalAppName is the name the reference image gives the portal entry.
const PortalAppName = "Instance Portal"

// Config is a validated list of apps and where it came from.
type Config struct {
	// Source names the input for messages: the portal.yaml path, or
	// "PORTAL_CONFIG".
	Source string
	// Apps in file order.
	Apps []App
}

// Portal returns the Instance Portal entry, if the configuration has one.
func (c *Config) Portal() (App, bool) {
	for _, a := range c.Apps {
		if a.IsPortal() {
			return a, true
		}
	}
	return App{}, false
}

// Find returns the app whose key or display name is name, ignoring case as
// the reference's wrapper scripts did ("Tensorboard" and "TensorBoard").
func (c *Config) Find(name string) (App, bool) {
	for _, a := range c.Apps {
		if strings.EqualFold(a.Key, name) || strings.EqualFold(a.Name, name) {
			return a, true
		}
	}
	return App{}, false
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
}

// FieldError is a validation failure that names where it happened: the
// source file, the app and the field.
type FieldError struct {
	Source string // portal.yaml path or "PORTAL_CONFIG"
	Line   int    // 0 when unknown
	App    string // app key, or "entry N"
	Field  string // e.g. "external_port"
	Msg    string
}

func (e *FieldError) Error() string {
	loc := e.Source
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	switch {
	case e.App != "" && e.Field != "":
		return fmt.Sprintf("%s: app %q: %s: %s", loc, e.App, e.Field, e.Msg)
	case e.App != "":
		return fmt.Sprintf("%s: app %q: %s", loc, e.App, e.Msg)
	case e.Field != "":
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	}
}

// Warning is something the input contained that the portal ignores.
type Warning struct {
	Source string
	Line   int
	App    string
	Msg    string
}
