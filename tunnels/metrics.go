package tunnels

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// metricsClient talks to one cloudflared metrics server
// (--metrics 127.0.0.1:<port>): /ready, /quicktunnel and /config.
type metricsClient struct {
	base   string // http://127.0.0.1:<port>
	client *http.Client
}

func newMetricsClient(addr string) *metricsClient {
	return &metricsClient{
		base: "http://" + addr,
		// Loopback only, no proxies (an HTTP_PROXY in the environment must
		// not see our polls), short timeouts so a wedged child cannot stall
		// the supervisor.
		client: &http.Client{
			Timeout:   2 * time.Second,
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: false, MaxIdleConnsPerHost: 1},
		},
	}
}

func (c *metricsClient) close() { c.client.CloseIdleConnections() }

// maxMetricsBody bounds what we read from the child.
const maxMetricsBody = 1 << 20

func (c *metricsClient) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBody))
	return resp.StatusCode, body, err
}

// ready asks /ready, which answers 200 only while at least one connection
// to Cloudflare's edge is registered (cloudflared metrics/readiness.go).
func (c *metricsClient) ready(ctx context.Context) (bool, error) {
	status, body, err := c.get(ctx, "/ready")
	if err != nil {
		return false, err
	}
	return parseReady(status, body), nil
}

// quickTunnelURL asks /quicktunnel; "" while no hostname is known or when
// the endpoint does not exist (older cloudflared).
func (c *metricsClient) quickTunnelURL(ctx context.Context) (string, error) {
	status, body, err := c.get(ctx, "/quicktunnel")
	if err != nil || status != http.StatusOK {
		return "", err
	}
	return parseQuickTunnel(body)
}

// ingress asks /config for a named tunnel's ingress rules.
func (c *metricsClient) ingress(ctx context.Context) ([]IngressRule, error) {
	status, body, err := c.get(ctx, "/config")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("/config answered %d", status)
	}
	return parseIngress(body)
}

// parseReady interprets a /ready answer: ready means 200 and, when the body
// says so, at least one ready connection.
func parseReady(status int, body []byte) bool {
	if status != http.StatusOK {
		return false
	}
	var r struct {
		ReadyConnections *int `json:"readyConnections"`
	}
	if json.Unmarshal(body, &r) == nil && r.ReadyConnections != nil {
		return *r.ReadyConnections > 0
	}
	return true
}

// parseQuickTunnel reads /quicktunnel's {"hostname":"x.trycloudflare.com"}
// and returns https://x.trycloudflare.com, or "" when no hostname is set
// yet. A hostname that is not a trycloudflare.com name is an error: the URL
// is shown to users as a link.
func parseQuickTunnel(body []byte) (string, error) {
	var r struct {
		Hostname string `json:"hostname"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("/quicktunnel: %w", err)
	}
	h := strings.TrimPrefix(strings.TrimSpace(r.Hostname), "https://")
	if h == "" {
		return "", nil
	}
	u, ok := quickTunnelURLFromLine("https://" + h)
	if !ok || u != "https://"+h {
		return "", fmt.Errorf("/quicktunnel: unexpected hostname %q", clip(h, 100))
	}
	return u, nil
}

// IngressRule is one hostname → local service rule of a named tunnel.
type IngressRule struct {
	Hostname string `json:"hostname"`
	Path     string `json:"path,omitempty"`
	Service  string `json:"service"`
}

// parseIngress reads /config, {"version":N,"config":{"ingress":[{"hostname":
// …,"service":…},…]}}, keeping the rules that have a hostname (the last,
// catch-all rule such as http_status:404 has none).
func parseIngress(body []byte) ([]IngressRule, error) {
	var r struct {
		Config struct {
			Ingress []struct {
				Hostname string          `json:"hostname"`
				Path     json.RawMessage `json:"path"`
				Service  json.RawMessage `json:"service"`
			} `json:"ingress"`
		} `json:"config"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("/config: %w", err)
	}
	var out []IngressRule
	for _, in := range r.Config.Ingress {
		if in.Hostname == "" {
			continue
		}
		out = append(out, IngressRule{Hostname: in.Hostname, Path: jsonString(in.Path), Service: jsonString(in.Service)})
	}
	return out, nil
}

// jsonString returns a JSON string's value, or the raw text of any other
// value (cloudflared serialises some fields as objects), "" for null.
func jsonString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
