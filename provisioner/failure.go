package provisioner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/instanceportal/portal/redact"
)

// StopSentinel (under Root) says the provisioner already stopped this
// instance once: a later failure does not stop it again, so a user who
// restarts it is not caught in a loop (the reference's file).
const StopSentinel = "/.provisioner_stopped"

// WebhookPayload is what the webhook receives, the reference's fields.
type WebhookPayload struct {
	Action      string `json:"action"`
	Manifest    string `json:"manifest"`
	Error       string `json:"error"`
	ContainerID string `json:"container_id"`
	Timestamp   string `json:"timestamp"`
}

func (r *run) webhookURL(o OnFailure) string {
	if v := r.opt.Env.Get(EnvWebhookURL); v != "" {
		return v
	}
	return o.Webhook
}

// webhook POSTs the payload; best effort, bounded to 10 s.
func (r *run) webhook(ctx context.Context, url string, p WebhookPayload) {
	body, _ := json.Marshal(p)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		r.log.Warn("Webhook call failed: not a valid URL: " + redact.URLs(url))
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.opt.HTTP.Do(req)
	if err != nil {
		r.log.Warn("Webhook call failed: " + redact.URLs(err.Error()))
		return
	}
	resp.Body.Close()
	r.log.Info(fmt.Sprintf("Webhook response: %d", resp.StatusCode))
}

func (r *run) payload(action, source, msg string) WebhookPayload {
	return WebhookPayload{Action: action, Manifest: source, Error: msg,
		ContainerID: r.opt.Env.Get("CONTAINER_ID"), Timestamp: r.opt.Now().UTC().Format("2006-01-02T15:04:05Z")}
}

func (r *run) notifySuccess(ctx context.Context, o OnFailure, source string) {
	if url := r.webhookURL(o); o.WebhookOnSuccess && url != "" {
		r.webhook(ctx, url, r.payload("success", source, ""))
	}
}

// handleFailure runs after the last attempt failed: the webhook, then the
// action. stop happens once per instance (StopSentinel).
func (r *run) handleFailure(ctx context.Context, o OnFailure, source, msg string) {
	if url := r.webhookURL(o); url != "" {
		r.webhook(ctx, url, r.payload(o.Action, source, msg))
	}
	switch o.Action {
	case ActionDestroy:
		r.log.Warn("on_failure=destroy: destroying instance")
		r.instance(ctx, http.MethodDelete, nil)
	case ActionStop:
		sentinel := r.opt.path(StopSentinel)
		if _, err := os.Stat(sentinel); err == nil {
			r.log.Warn("Instance was already stopped by provisioner, skipping to prevent restart loop")
			return
		}
		r.log.Warn("on_failure=stop: stopping instance")
		if err := os.WriteFile(sentinel, nil, 0o644); err != nil {
			r.log.Warn(fmt.Sprintf("Could not write stop sentinel %s: %v", sentinel, err))
		}
		r.instance(ctx, http.MethodPut, map[string]string{"state": "stopped"})
	default:
		r.log.Info("on_failure=continue: returning exit code 1")
	}
}

// instance stops or destroys this instance through the console's API
// (what `vastai stop|destroy instance` calls), with the instance's key in
// the Authorization header: never on a command line.
func (r *run) instance(ctx context.Context, method string, body any) {
	id, key := r.opt.Env.Get("CONTAINER_ID"), r.opt.Env.Get("CONTAINER_API_KEY")
	verb := map[string]string{http.MethodDelete: "destroy", http.MethodPut: "stop"}[method]
	if id == "" || key == "" {
		r.log.Error(fmt.Sprintf("Cannot %s instance: CONTAINER_ID or CONTAINER_API_KEY not set", verb))
		return
	}
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := strings.TrimRight(r.opt.ConsoleAPI, "/") + "/api/v0/instances/" + id + "/"
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		r.log.Error(fmt.Sprintf("Instance %s command failed: %v", verb, err))
		return
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.opt.HTTP.Do(req)
	if err != nil {
		r.log.Error(fmt.Sprintf("Instance %s command failed: %s", verb, strings.ReplaceAll(redact.URLs(err.Error()), key, "…")))
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		r.log.Error(fmt.Sprintf("Instance %s command failed: HTTP %d", verb, resp.StatusCode))
		return
	}
	r.log.Info(fmt.Sprintf("Instance %s command succeeded", verb))
}
