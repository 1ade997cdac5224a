// Package vastauth decides whether a request to an Instance Portal app may
// pass: it parses the credentials a client can present (a `token` query
// parameter, the session cookie, an Authorization header with Bearer or
// Basic), checks them in constant time against the configured secrets,
// issues and verifies signed, expiring session values, limits how often one
// client may present a wrong credential, and keeps the generated token that
// stands in when no secret is configured.
//
// It never imports Caddy: caddymodules/vastauth.go wires it into a handler.
package vastauth
