package caddymodules

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/tunnels"
)

func init() {
	caddy.RegisterModule(TunnelsAPI{})
}

const tunnelsAPIBase = "/api/tunnels"

// TunnelsAPI serves the `tunnels` app over HTTP:
//
//	GET  <base>          {"tunnels": [status…]}
//	POST <base>          {"target": "http://localhost:8080"} → create (201, or 200 if it exists)
//	POST <base>/stop     {"target": …} → stop
//	POST <base>/refresh  {"target": …} → restart for a new URL
//
// A status has type (quick|named), target, url, state (starting|running|
// restarting|rate_limited|failed|stopped), last_error, started_at, and for
// the named tunnel its ingress rules. A create whose target is an app's
// internal port (published without the portal's authentication) succeeds
// and adds "warning" and, when the app has one, "suggested_target": its
// authenticated external port. Every error is {"error": "…"}: 400 for a bad
// target or body, 404 for an unknown tunnel or endpoint, 405 for a wrong
// method, 409 at max_tunnels, 415 for a POST that is not JSON (which also
// keeps cross-site form posts out), 429 with Retry-After when creations
// come too fast, 503 when cloudflared is missing. No answer carries a
// token.
type TunnelsAPI struct {
	// BasePath is the path the API answers under. Default: /api/tunnels
	BasePath string `json:"base_path,omitempty"`

	manager func() *tunnels.Manager
	apps    func() []tunnels.App
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (TunnelsAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.tunnels_api", New: func() caddy.Module { return new(TunnelsAPI) }}
}

// Provision finds the config's tunnels app (an empty one with defaults if
// the config has none).
func (h *TunnelsAPI) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.BasePath == "" {
		h.BasePath = tunnelsAPIBase
	}
	h.BasePath = "/" + strings.Trim(h.BasePath, "/")
	app, err := loadTunnelsApp(ctx)
	if err != nil {
		return err
	}
	h.manager, h.apps = app.Manager, app.AppPorts
	return nil
}

// maxTunnelsBody bounds a request body; {"target": …} is tiny.
const maxTunnelsBody = 4 << 10

func (h *TunnelsAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := apiRest(r.URL.Path, h.BasePath)
	if !ok {
		return notUnderBase(w, r, next, h.BasePath)
	}
	m := h.manager()
	if m == nil {
		return writeJSONError(w, http.StatusServiceUnavailable, "tunnels app not running")
	}
	action := strings.Trim(rest, "/")
	switch action {
	case "", "stop", "refresh":
	default:
		return writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no tunnels endpoint %q", clipText(action, 64)))
	}
	if action == "" {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return writeJSON(w, http.StatusOK, map[string]any{"tunnels": m.List()})
		case http.MethodPost:
		default:
			return methodNotAllowed(w, "GET, HEAD, POST")
		}
	}
	// The one cross-site policy of the state-changing endpoints (the JSON
	// content type alone was the tunnels API's guard before issue 20).
	if refused, err := refuseStateChange(w, r); refused {
		return err
	}
	target, status, err := readTunnelTarget(w, r)
	if err != nil {
		return writeJSONError(w, status, err.Error())
	}
	res := tunnelAction(m, h.apps, h.logger, action, target)
	if res.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(res.RetryAfter))
	}
	return writeJSON(w, res.Code, res.body())
}

// tunnelResult is the outcome of a tunnel action, whoever asked: the
// tunnels API, the reference's paths or an MCP tool.
type tunnelResult struct {
	Status  tunnels.Status
	Created bool
	Err     error
	// Code is the HTTP status the tunnels API answers with.
	Code int
	// RetryAfter (seconds) is set with 429.
	RetryAfter int
	// Warning and SuggestedTarget: the target is an app's internal port,
	// published without the portal's authentication.
	Warning, SuggestedTarget string
}

func (t tunnelResult) body() map[string]any {
	body := map[string]any{}
	if t.Status.Type != "" {
		body["tunnel"] = t.Status
	}
	if t.Err != nil {
		body["error"] = t.Err.Error()
	}
	if t.Warning != "" {
		body["warning"] = t.Warning
	}
	if t.SuggestedTarget != "" {
		body["suggested_target"] = t.SuggestedTarget
	}
	return body
}

// tunnelAction creates ("" or "create"), stops or refreshes the quick
// tunnel to target: the one code path of every caller.
func tunnelAction(m *tunnels.Manager, apps func() []tunnels.App, logger *zap.Logger, action, target string) tunnelResult {
	var res tunnelResult
	var err error
	switch action {
	case "", "create":
		action = ""
		res.Status, res.Created, err = m.Create(target)
	case "stop":
		res.Status, err = m.Stop(target)
	case "refresh":
		res.Status, err = m.Refresh(target)
	default:
		err = fmt.Errorf("%w: no tunnel action %q: want create, stop or refresh", tunnels.ErrInvalidTarget, clipText(action, 32))
	}
	res.Err = err
	res.Code = http.StatusOK
	if res.Created {
		res.Code = http.StatusCreated
	}
	var slow *tunnels.SlowDownError
	switch {
	case err == nil:
	case errors.Is(err, tunnels.ErrInvalidTarget):
		res.Code = http.StatusBadRequest
	case errors.Is(err, tunnels.ErrNotFound):
		res.Code = http.StatusNotFound
	case errors.Is(err, tunnels.ErrTooManyTunnels):
		res.Code = http.StatusConflict
	case errors.As(err, &slow):
		res.Code = http.StatusTooManyRequests
		res.RetryAfter = int(math.Ceil(slow.Wait.Seconds()))
	case errors.Is(err, tunnels.ErrBinaryMissing), errors.Is(err, tunnels.ErrClosed):
		res.Code = http.StatusServiceUnavailable
	default:
		res.Code = http.StatusInternalServerError
	}
	if err != nil {
		logger.Debug("tunnel request refused", zap.String("action", action), zap.Int("status", res.Code), zap.Error(err))
	}
	if action == "" && res.Status.Type == tunnels.Quick && apps != nil {
		// Any local port may be tunnelled, but the user should know when
		// the tunnel bypasses the portal's authentication.
		if adv := tunnels.AdviseTarget(apps(), res.Status.Target); adv.Warning != "" {
			logger.Warn("tunnel to an app's internal port: published without the portal's authentication",
				zap.String("target", res.Status.Target), zap.String("suggested_target", adv.SuggestedTarget))
			res.Warning, res.SuggestedTarget = adv.Warning, adv.SuggestedTarget
		}
	}
	return res
}

// readTunnelTarget decodes {"target": "…"} strictly.
func readTunnelTarget(w http.ResponseWriter, r *http.Request) (string, int, error) {
	if !isJSONRequest(r) {
		return "", http.StatusUnsupportedMediaType, errors.New(`want Content-Type: application/json and a body like {"target": "http://localhost:8080"}`)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTunnelsBody))
	dec.DisallowUnknownFields()
	var body struct {
		Target *string `json:"target"`
	}
	if err := dec.Decode(&body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return "", http.StatusBadRequest, fmt.Errorf("body: larger than %d bytes; want {\"target\": \"http://localhost:8080\"}", maxTunnelsBody)
		}
		return "", http.StatusBadRequest, fmt.Errorf("body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", http.StatusBadRequest, errors.New("body: want one JSON object")
	}
	if body.Target == nil {
		return "", http.StatusBadRequest, errors.New(`body: missing "target"`)
	}
	return *body.Target, 0, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*TunnelsAPI)(nil)
	_ caddyhttp.MiddlewareHandler = (*TunnelsAPI)(nil)
)
