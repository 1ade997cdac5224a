package web

import (
	"embed"
	"io/fs"
)

// dashboardFiles holds the dashboard: plain HTML, CSS and JavaScript with no
// build step and nothing fetched from a CDN, because an instance may be
// offline and the page must still work.
//
//go:embed dashboard
var dashboardFiles embed.FS

// Dashboard returns the dashboard's files with index.html at the root.
// caddymodules serves it as the caddy.fs.dashboard file system.
func Dashboard() fs.FS {
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		// fs.Sub fails only for an invalid directory name, and "dashboard"
		// is a constant that go:embed has already checked.
		panic(err)
	}
	return sub
}
