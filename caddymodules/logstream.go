package caddymodules

import (
	"fmt"
	"net/http"
	"path/filepath"

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

// logstreamRoute serves the log API for the portal's log directory. The
// clean copies log-tee writes live one directory up (its default), which
// the "everything" archive adds. Its paths are the route table's.
func logstreamRoute(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) caddyhttp.Route {
	return portalRouteAt(logsAPIBase).caddyRoute(plan, warns)
}

func logstreamFor(plan *portalconfig.Plan) LogStream {
	var h LogStream
	h.Dir = plan.Settings.LogDir
	h.PlainDir = logArchiveDir(plan)
	return h
}

// logServices keeps one logstream.Service (watcher, tailers, rings) per
// directory and options, shared by every handler instance and surviving
// config reloads: a reload must not drop the rings or restart the tails.
var logServices = newSharedPool[*logstream.Service]("http.handlers.logstream")

// LogStream serves the live log API of a directory of *.log files:
// GET …/files, …/ws (WebSocket), …/stream (Server-Sent Events) and
// …/download. Terminal output (colours, '\r' progress bars, nested bars
// redrawn with cursor-up) is rendered to escaped HTML on the server, once
// per line whatever the number of clients. Its settings are
// logstream.Config's, embedded: the JSON keys are that struct's.
type LogStream struct {
	logstream.Config

	resolved logstream.Config // placeholders resolved
	pooled   *shared[*logstream.Service]
	handler  *logstream.Handler
}

// CaddyModule returns the Caddy module information.
func (LogStream) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.logstream",
		New: func() caddy.Module { return new(LogStream) },
	}
}

// Provision resolves the directories, checks the settings and takes the
// shared Service for them, handing it this config's logger: a Service
// kept across a reload logs through the newest config's logger, not
// through one whose sinks the old config closed. The Service starts its
// watcher on the first request, not here, so `caddy validate` starts
// nothing.
func (h *LogStream) Provision(ctx caddy.Context) error {
	logger := ctx.Logger()
	cfg := h.Config
	expandPlaceholders(&cfg.Dir, &cfg.PlainDir)
	h.resolved = cfg
	if err := cfg.Check(); err != nil {
		return moduleErr(h, err)
	}
	// Pooled workers outlive this config: the Service owns its context,
	// cancelled by Close when the last config using it is gone.
	pooled, err := logServices.hold(logstream.ServiceKey(cfg), h, logger, func(log *zap.Logger) (*logstream.Service, error) {
		return logstream.NewService(cfg, log.Named("tail")), nil
	})
	if err != nil {
		return fmt.Errorf("logstream: log directory %s: %w", cfg.Dir, err)
	}
	h.pooled = pooled
	h.handler = logstream.NewHandler(pooled.Value, cfg, logger)
	return nil
}

// Validate checks the settings as Provision resolved them (Provision has
// refused bad ones before taking the pooled Service).
func (h *LogStream) Validate() error { return moduleErr(h, h.resolved.Check()) }

// Cleanup releases this config's hold on the shared Service; the last
// holder's release stops its watcher and tailers. Safe after a failed
// Provision.
func (h *LogStream) Cleanup() error {
	err := h.pooled.release()
	h.pooled = nil
	return err
}

// ServeHTTP answers the log API. It is a terminal handler: next is never
// called, and every answer, a 400 with what was wrong included, is
// written by the handler.
func (h *LogStream) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h.handler.ServeHTTP(w, r)
	return nil
}

// Interface guards
var (
	_ caddy.Module                = (*LogStream)(nil)
	_ caddy.Provisioner           = (*LogStream)(nil)
	_ caddy.Validator             = (*LogStream)(nil)
	_ caddy.CleanerUpper          = (*LogStream)(nil)
	_ caddyhttp.MiddlewareHandler = (*LogStream)(nil)
)

// logArchiveDir is the directory the full log archive holds: the log
// directory's parent, where log-tee writes the plain copies.
func logArchiveDir(plan *portalconfig.Plan) string {
	return filepath.Dir(filepath.Clean(plan.Settings.LogDir))
}
