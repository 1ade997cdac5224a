package caddymodules

import (
	"encoding/json"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// writeJSON writes the JSON answer of a portal API (processes, tunnels,
// links, app states, boot status), never cached. Errors are written as documented
// JSON bodies rather than returned to Caddy: the dashboard shows the
// message, and an empty error page would lose it.
func writeJSON(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, err = w.Write(append(b, '\n'))
	return err
}
