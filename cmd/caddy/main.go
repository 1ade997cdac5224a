// Command caddy is Caddy v2 with the standard modules plus every Instance
// Portal module, built with plain `go build` (tests use it; the image uses
// the identical xcaddy build described in the README).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// Ours, through the same module root that xcaddy plugs in.
	_ "github.com/instanceportal/portal"
)

func main() {
	caddycmd.Main()
}
