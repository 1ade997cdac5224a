// Package caddymodules is the Caddy-facing layer of Instance Portal: module
// registration, JSON config structs, Caddyfile directives and `caddy portal`
// subcommands. Each file wires one plain package (portalconfig, tunnels,
// logstream, gpumetrics, …) into Caddy's lifecycle and delegates the work.
package caddymodules
