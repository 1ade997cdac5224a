// Package web holds the portal's browser assets, embedded in the binary so
// the image needs no asset files and no build step.
package web

import _ "embed"

// StartingPage is served in place of a 502/503/504 that Caddy produced
// because an app is not listening yet. It polls the same URL and reloads as
// soon as the answer no longer carries X-Portal-Placeholder.
//
//go:embed starting.html
var StartingPage string
