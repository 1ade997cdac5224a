package portallinks

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/instanceportal/portal/confdecl"
)

// Builtin returns the built-in help cards. origin is how the browser
// reached the portal ("https://203.0.113.7:1111", a tunnel's
// "https://x.trycloudflare.com"); the API and Prometheus recipes use it, so
// they work as pasted. An unusable origin falls back to the SSH-forwarded
// portal on localhost. No card ever holds a secret: the login card says
// where the token is, never what it is.
func Builtin(c Config, origin string) []Card {
	confdecl.FillDefaults(&c, Default())
	u, ok := parseOrigin(origin)
	if !ok {
		u = &url.URL{Scheme: "http", Host: net.JoinHostPort("localhost", strconv.Itoa(c.PortalPort))}
	}
	base := u.Scheme + "://" + u.Host
	sshHost, sshPort := "<instance-ip>", "<ssh-port>"
	if c.SSHHost != "" {
		sshHost = c.SSHHost
	}
	if c.SSHPort > 0 {
		sshPort = strconv.Itoa(c.SSHPort)
	}
	pp := strconv.Itoa(c.PortalPort)
	target := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		target = net.JoinHostPort(u.Hostname(), port)
	}
	return []Card{
		{
			Source: SourceBuiltin, ID: "login", Label: "How to log in", Icon: "tag",
			Description: fmt.Sprintf("User name: %s. Password: the instance's token. "+
				"It is the value of OPEN_BUTTON_TOKEN (or WEB_PASSWORD) in the instance's environment; "+
				"in a terminal on the instance, the command below prints it. "+
				"The Open buttons of the Vast.ai console pass it for you, and the portal then keeps you "+
				"logged in with a cookie, so links here need no token.", c.Username),
			Snippet: "caddy portal token",
		},
		{
			Source: SourceBuiltin, ID: "ssh", Label: "SSH port forward", Icon: "terminal",
			Description: "Reach the portal, and any app's internal port, through SSH: no proxy, no login. " +
				"Each app's card shows the forward for its own port.",
			Snippet: fmt.Sprintf("ssh -p %s root@%s -L %s:localhost:%s\n# then open http://localhost:%s/", sshPort, sshHost, pp, pp, pp),
		},
		{
			Source: SourceBuiltin, ID: "api", Label: "API access", Icon: "code",
			Description: "Scripts reach the portal and every app behind it with the token as a bearer token: " +
				"no cookie, no login page.",
			Snippet: fmt.Sprintf("TOKEN='<your token>'   # see How to log in\ncurl -H \"Authorization: Bearer $TOKEN\" %s/api/apps", base),
		},
		{
			Source: SourceBuiltin, ID: "prometheus", Label: "Prometheus metrics", Icon: "database",
			Description: "GPU and system metrics in the Prometheus format at /metrics " +
				"(dcgm-exporter's metric names). Put the token alone in the credentials file.",
			Snippet: fmt.Sprintf(`scrape_configs:
  - job_name: instance-portal
    scheme: %s
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: /etc/prometheus/portal-token
    static_configs:
      - targets: ["%s"]`, u.Scheme, target),
		},
		{
			Source: SourceBuiltin, ID: "docs", Label: "Documentation", Icon: "book",
			Description: "How the portal works: apps and portal.yaml, tunnels, logs, metrics and processes.",
			URL:         c.DocsURL, ButtonText: "Open",
		},
	}
}

// parseOrigin accepts scheme://host[:port] with an http(s) scheme and a
// plain host: the Host header is the client's to choose, so nothing odd
// is echoed into a recipe.
func parseOrigin(origin string) (*url.URL, bool) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, false
	}
	host := u.Hostname()
	if host == "" || strings.ContainsFunc(host, func(r rune) bool {
		return !(r == '.' || r == '-' || r == ':' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		return nil, false
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, false
		}
	}
	return u, true
}
