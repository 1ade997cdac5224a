package caddymodules

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/vastauth"
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

// writeJSONError answers code with the portal APIs' error body,
// {"error": msg}.
func writeJSONError(w http.ResponseWriter, code int, msg string) error {
	return writeJSON(w, code, map[string]string{"error": msg})
}

// serveReadOnly answers a read-only endpoint: 405 to any method but GET
// and HEAD, else 200 with the answer, made only then.
func serveReadOnly(w http.ResponseWriter, r *http.Request, answer func() any) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	return writeJSON(w, http.StatusOK, answer())
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed; use "+allow)
}

// refuseStateChange answers a call to a state-changing endpoint that must
// not run: any method but POST (405), or a cross-site request (403, by
// vastauth.CrossSiteRefusal: the one policy of every state-changing API).
// It reports whether it answered, and the answer's error.
func refuseStateChange(w http.ResponseWriter, r *http.Request) (bool, error) {
	if r.Method != http.MethodPost {
		return true, methodNotAllowed(w, http.MethodPost)
	}
	if reason := vastauth.CrossSiteRefusal(r); reason != "" {
		return true, writeJSONError(w, http.StatusForbidden, reason)
	}
	return false, nil
}

// refuseAction is refuseStateChange for an action that its path says all
// of (start a program, postpone the idle stop): it also refuses a body
// that is not empty or {}, or not sent as Content-Type: application/json.
func refuseAction(w http.ResponseWriter, r *http.Request) (bool, error) {
	if refused, err := refuseStateChange(w, r); refused {
		return true, err
	}
	if status, err := readEmptyJSONBody(w, r); err != nil {
		return true, writeJSONError(w, status, err.Error())
	}
	return false, nil
}

// maxActionBody bounds the body of an action, which carries nothing ({}
// at most).
const maxActionBody = 1 << 10

// readEmptyJSONBody requires Content-Type: application/json and accepts an
// empty body or {}: the action is in the path.
func readEmptyJSONBody(w http.ResponseWriter, r *http.Request) (int, error) {
	b, status, err := readJSONBody(w, r, maxActionBody, " (the body may be empty or {})")
	if err != nil {
		return status, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return 0, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var empty struct{}
	if err := dec.Decode(&empty); err != nil {
		return http.StatusBadRequest, fmt.Errorf("body: want {} or nothing: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return http.StatusBadRequest, errors.New("body: want one JSON object")
	}
	return 0, nil
}

// readJSONBody reads a POST body of at most limit bytes, which must come
// as Content-Type: application/json (hint ends the 415 message). On error
// it answers the status to refuse the request with.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64, hint string) ([]byte, int, error) {
	if !isJSONRequest(r) {
		return nil, http.StatusUnsupportedMediaType, errors.New("want Content-Type: application/json" + hint)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body: larger than %d bytes", limit)
	}
	return b, 0, nil
}

// isJSONRequest reports whether the request's body is declared JSON: a
// content type a cross-site form cannot send.
func isJSONRequest(r *http.Request) bool {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && ct == "application/json"
}

// apiRest is the path below base, with ok false when the request is not
// under base.
func apiRest(path, base string) (rest string, ok bool) {
	rest, ok = strings.CutPrefix(path, base)
	return rest, ok && (rest == "" || rest[0] == '/')
}

// notUnderBase answers a request that apiRest found outside base: the next
// handler's answer, or 404 when the path is base in another spelling.
// Caddy's path matcher ignores case, so /api/Processes/… reaches a handler
// written for /api/processes; answering it with nothing (an empty 200)
// looked like success (issue 20).
func notUnderBase(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, base string) error {
	p := r.URL.Path
	if len(p) >= len(base) && strings.EqualFold(p[:len(base)], base) && (len(p) == len(base) || p[len(base)] == '/') {
		return writeJSONError(w, http.StatusNotFound, "no such endpoint: paths are lower case ("+base+")")
	}
	return next.ServeHTTP(w, r)
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
