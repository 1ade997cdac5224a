// Package caddymodules is the Caddy-facing layer of Instance Portal: module
// registration, JSON config structs, Caddyfile directives and `caddy portal`
// subcommands. Each file wires one plain package (portalconfig, tunnels,
// logstream, gpumetrics, …) into Caddy's lifecycle and delegates the work.
//
// "The reference" (or "the reference image") in this package means Vast.ai's
// public base image, whose portal this one replaces: its Python Caddyfile
// generator, boot scripts and the supervisor wrapper scripts its templates
// are written against. Where it is named, we keep its observable behaviour.
package caddymodules
