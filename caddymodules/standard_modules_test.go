package caddymodules

// The adapter emits standard modules (reverse_proxy, encode, the log filter
// encoder, …); every real build (cmd/caddy, xcaddy) includes them, and so do
// the tests that validate the adapter's output.
import _ "github.com/caddyserver/caddy/v2/modules/standard"
