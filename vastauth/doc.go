// Package vastauth decides whether a request to an Instance Portal app may
// pass. It parses the credentials a client can present (a `token` query
// parameter, the session cookie, an Authorization header with Bearer or
// Basic, a `portal_handoff` token), checks them in constant time against
// the configured secrets, issues and verifies signed, expiring, revocable
// session values and single-use handoff tokens under a key salted per
// instance, limits how often one client may present a wrong credential,
// recognises our secrets in any form so they can be removed before the
// app or a log sees them, and keeps the state that outlives a restart (the
// generated token, the salt, the revoked sessions) in a state directory.
//
// Config declares the settings once; the Caddy module embeds it.
//
// It never imports Caddy: caddymodules/vastauth.go wires it into a handler.
//
// "The reference" (or "the reference image") in this package means Vast.ai's
// public base image, whose portal this one replaces: its Python Caddyfile
// generator, boot scripts and the supervisor wrapper scripts its templates
// are written against. Where it is named, we keep its observable behaviour.
package vastauth
