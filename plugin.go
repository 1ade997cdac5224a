// Package portal is the module root that xcaddy plugs into a Caddy build.
//
// It holds no code of its own: the blank imports below register every
// Instance Portal module (adapter, handlers, apps) and the `caddy portal`
// command with Caddy, so that
//
//	xcaddy build v2.11.9 --with github.com/instanceportal/portal@v0.0.0-00010101000000-000000000000=.
//
// produces the same binary as `go build ./cmd/caddy`.
package portal

import (
	_ "github.com/instanceportal/portal/caddymodules"
	_ "github.com/instanceportal/portal/portalcmd"
)
