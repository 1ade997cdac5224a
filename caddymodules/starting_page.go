package caddymodules

import (
	"html/template"
	"strings"
	"sync"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/web"
)

// startingTemplate is web/starting.html, parsed once per process.
var startingTemplate = sync.OnceValues(func() (*template.Template, error) {
	return template.New("starting.html").Parse(web.StartingPage)
})

// startingPageData is what the starting-up page of one app port shows.
type startingPageData struct {
	// AppName is the app proxied on the port (user text: html/template
	// escapes it for HTML, literalText for Caddy's placeholders).
	AppName string
	// DashboardPort is the Instance Portal entry's external port, 0 when
	// the portal serves none (or this is the entry's own port).
	DashboardPort int
	// DashboardPublicPort and AppPublicPort are their VAST_TCP_PORT_
	// mappings (0 when unmapped): a visitor on the app's public port
	// reaches the dashboard on its public port.
	DashboardPublicPort int
	AppPublicPort       int
	// DashboardURL is the dashboard's direct address, when known, for
	// visitors who came through a tunnel (whose address has no port).
	DashboardURL string
}

// startingPage renders the starting-up page for the app port sp, ready for
// a static_response body: placeholders escaped.
func startingPage(plan *portalconfig.Plan, sp portalconfig.ServerPlan) (string, error) {
	data := startingPageData{AppName: sp.App.Name, AppPublicPort: plan.Settings.PublicPorts[sp.Port]}
	if p := plan.Portal; p != nil && !sp.App.IsPortal() {
		if _, served := plan.Server(p.ExternalPort); served {
			data.DashboardPort = p.ExternalPort
			data.DashboardPublicPort = plan.Settings.PublicPorts[p.ExternalPort]
			for _, info := range plan.Apps {
				if info.Name == p.Name && info.ExternalPort == p.ExternalPort {
					data.DashboardURL = info.DirectURL
					break
				}
			}
		}
	}
	tmpl, err := startingTemplate()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		return "", err
	}
	return literalText(b.String()), nil
}
