package caddymodules

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/logstream"
	"github.com/instanceportal/portal/portalconfig"
)

func init() {
	caddy.RegisterModule(LogStream{})
}

// logstreamRoute serves the log API for the portal's log directory.
func logstreamRoute(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) caddyhttp.Route {
	h := LogStream{Dir: plan.Settings.LogDir}
	return pathRoute(warns, []string{"/api/logs", "/api/logs/*"}, caddyconfig.JSONModuleObject(h, "handler", "logstream", warns))
}

// logServices keeps one logstream.Service (watcher, tailers, rings) per
// directory and options, shared by every handler instance and surviving
// config reloads: a reload must not drop the rings or restart the tails.
var logServices = caddy.NewUsagePool()

// LogStream serves the live log API of a directory of *.log files:
// GET …/files, …/ws (WebSocket), …/stream (Server-Sent Events) and
// …/download. Terminal output (colours, '\r' progress bars, nested bars
// redrawn with cursor-up) is rendered to escaped HTML on the server, once
// per line whatever the number of clients.
type LogStream struct {
	// Dir is the directory followed. Placeholders such as {env.X} are
	// resolved. Default: /var/log/portal.
	Dir string `json:"dir,omitempty"`
	// RingLines is how many last lines each file keeps for clients that
	// join late. Default: 2000.
	RingLines int `json:"ring_lines,omitempty"`
	// RingBytes bounds one file's ring in memory. Default: 4 MiB.
	RingBytes int `json:"ring_bytes,omitempty"`
	// BlockLines is the terminal height emulated once a file redraws
	// earlier lines (nested progress bars). Default: 24.
	BlockLines int `json:"block_lines,omitempty"`
	// MaxLineBytes caps one line; the rest is dropped with a marker.
	// Default: 65536.
	MaxLineBytes int `json:"max_line_bytes,omitempty"`
	// PollInterval is used where inotify is unavailable. Default: 250ms.
	PollInterval caddy.Duration `json:"poll_interval,omitempty"`
	// ForcePolling skips inotify (network filesystems). Default: false.
	ForcePolling bool `json:"force_polling,omitempty"`
	// AllowedOrigins are extra browser origins (host patterns such as
	// "*.example.com") allowed to open the WebSocket. Same-origin requests
	// and clients that send no Origin are always allowed. Default: none.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// Queue is the per-client event queue; a client that lets it fill
	// gets a "lagged" event and a resync. Default: 256.
	Queue int `json:"queue,omitempty"`
	// WriteTimeout drops a client that cannot take one write in time.
	// Default: 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
	// PingInterval keeps tunnels and proxies from closing idle streams.
	// Default: 15s.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`

	poolKey string
	handler *logstream.Handler
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (LogStream) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.logstream",
		New: func() caddy.Module { return new(LogStream) },
	}
}

func (h *LogStream) options() logstream.Options {
	return logstream.Options{
		RingLines:    h.RingLines,
		RingBytes:    h.RingBytes,
		BlockLines:   h.BlockLines,
		MaxLineBytes: h.MaxLineBytes,
		PollInterval: time.Duration(h.PollInterval),
		ForcePolling: h.ForcePolling,
	}
}

// Provision resolves the directory and takes the shared Service for it.
// The Service starts its watcher on the first request, not here, so
// `caddy validate` starts nothing.
func (h *LogStream) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	dir := caddy.NewReplacer().ReplaceAll(h.Dir, "")
	if dir == "" {
		dir = portalconfig.DefaultLogDir
	}
	opts := h.options()
	h.poolKey = fmt.Sprintf("%s|%+v", dir, opts)
	val, _, err := logServices.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
		// Pooled workers outlive this config: the Service owns its context,
		// cancelled by Destruct when the last config using it is gone.
		return logstream.NewService(dir, opts, h.logger.Named("tail")), nil
	})
	if err != nil {
		h.poolKey = ""
		return fmt.Errorf("log directory %s: %w", dir, err)
	}
	h.handler = &logstream.Handler{
		Svc:            val.(*logstream.Service),
		OriginPatterns: h.AllowedOrigins,
		Queue:          h.Queue,
		WriteTimeout:   time.Duration(h.WriteTimeout),
		Ping:           time.Duration(h.PingInterval),
		Log:            h.logger,
	}
	return nil
}

// Validate checks the numbers.
func (h *LogStream) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"ring_lines", h.RingLines}, {"ring_bytes", h.RingBytes}, {"block_lines", h.BlockLines}, {"max_line_bytes", h.MaxLineBytes}, {"queue", h.Queue}} {
		if f.v < 0 {
			return fmt.Errorf("logstream: %s must not be negative, got %d", f.name, f.v)
		}
	}
	if h.BlockLines == 1 {
		return fmt.Errorf("logstream: block_lines must be at least 2")
	}
	for _, d := range []struct {
		name string
		v    caddy.Duration
	}{{"poll_interval", h.PollInterval}, {"write_timeout", h.WriteTimeout}, {"ping_interval", h.PingInterval}} {
		if d.v < 0 {
			return fmt.Errorf("logstream: %s must not be negative, got %v", d.name, time.Duration(d.v))
		}
	}
	return nil
}

// Cleanup releases this config's hold on the shared Service; the last
// holder's release stops its watcher and tailers. Safe after a failed
// Provision.
func (h *LogStream) Cleanup() error {
	if h.poolKey == "" {
		return nil
	}
	_, err := logServices.Delete(h.poolKey)
	h.poolKey = ""
	return err
}

// ServeHTTP answers the log API. It is a terminal handler: next is never
// called.
func (h *LogStream) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	err := h.handler.ServeHTTP(w, r)
	var he *logstream.HTTPError
	if errors.As(err, &he) {
		return caddyhttp.Error(he.Status, he.Err)
	}
	return err
}

// Interface guards
var (
	_ caddy.Module                = (*LogStream)(nil)
	_ caddy.Provisioner           = (*LogStream)(nil)
	_ caddy.Validator             = (*LogStream)(nil)
	_ caddy.CleanerUpper          = (*LogStream)(nil)
	_ caddyhttp.MiddlewareHandler = (*LogStream)(nil)
)
