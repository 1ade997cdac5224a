// Package tunnels supervises cloudflared processes: Cloudflare quick tunnels
// (*.trycloudflare.com, one process per local target) and a named tunnel run
// from an account token. It never imports Caddy; caddymodules wires it into
// an app and an HTTP API.
//
// Each tunnel is a suture-style service: one run is Serve-like (start the
// process, wait until cloudflared's metrics server reports a registered edge
// connection, publish the URL, watch it), and a supervisor restarts failed
// runs with jittered, capped exponential backoff whose failure count decays.
// Children live in their own process group so that stopping a tunnel can
// never leave an orphan holding the tunnel open.
package tunnels

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidTarget marks a target that is not an http(s) URL on the local
// machine with a port. The message names the problem.
var ErrInvalidTarget = errors.New("invalid tunnel target")

// NormalizeTarget validates a tunnel target and returns its canonical form,
// scheme://host:port. Only http and https URLs on localhost, 127.0.0.1 or
// ::1 with an explicit port are accepted: a tunnel publishes its target to
// the internet, so it must never point at another machine.
func NormalizeTarget(raw string) (string, error) {
	bad := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("%w %q: %s", ErrInvalidTarget, clip(raw, 200), fmt.Sprintf(format, a...))
	}
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return bad("empty; want e.g. http://localhost:8080")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return bad("scheme must be http or https")
	}
	if u.Opaque != "" || u.Host == "" {
		return bad("missing host; want e.g. http://localhost:8080")
	}
	if u.User != nil {
		return bad("credentials are not allowed in a target")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return bad("only scheme, host and port are allowed (no path, query or fragment)")
	}
	host := strings.ToLower(u.Hostname())
	switch host {
	case "localhost", "127.0.0.1", "::1":
	default:
		return bad("host must be localhost, 127.0.0.1 or ::1")
	}
	ps := u.Port()
	if ps == "" {
		return bad("a port is required")
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != ps {
		return bad("port must be a number in 1-65535")
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// clip shortens s for error messages so that hostile input cannot flood logs.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Advice is what the API adds to a create answer when the target bypasses
// the portal: a warning, and the authenticated target to use instead when
// there is one.
type Advice struct {
	Warning         string `json:"warning,omitempty"`
	SuggestedTarget string `json:"suggested_target,omitempty"`
}

// AdviseTarget warns when target is an app's
// internal port: a tunnel there publishes the app without the portal's
// authentication. The tunnel is still allowed (any local port may be
// tunnelled); the advice names the app's external port, served behind the
// portal's authentication, as the target to use. A port that is some app's
// tunnel port (a link-only app's own port, or a served port) is never
// warned about.
func AdviseTarget(apps []App, target string) Advice {
	norm, err := NormalizeTarget(target)
	if err != nil {
		return Advice{} // not a target at all: the create is refused anyway
	}
	u, err := url.Parse(norm)
	if err != nil {
		return Advice{}
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port == 0 {
		return Advice{}
	}
	for _, a := range apps {
		if a.TunnelPort == port {
			return Advice{}
		}
	}
	for _, a := range apps {
		if a.InternalPort != port || a.InternalPort == a.ExternalPort {
			continue
		}
		name := clip(a.Name, 80)
		if !a.Served || a.TunnelPort == 0 {
			return Advice{Warning: fmt.Sprintf(
				"port %d is the internal port of %q: this tunnel publishes it without the portal's authentication, and the portal serves no authenticated port for it (external port %d is not published)",
				port, name, a.ExternalPort)}
		}
		scheme := a.Scheme
		if scheme == "" {
			scheme = "http"
		}
		suggested := scheme + "://localhost:" + strconv.Itoa(a.TunnelPort)
		return Advice{
			Warning: fmt.Sprintf(
				"port %d is the internal port of %q: this tunnel publishes it without the portal's authentication; tunnel %s (its external port, behind the portal) instead",
				port, name, suggested),
			SuggestedTarget: suggested,
		}
	}
	return Advice{}
}
