// Package headerflush holds back a flush that would send a response's
// headers on their own.
//
// Caddy's reverse_proxy with flush_interval -1 (the reference's default,
// kept by the portal) flushes right after writing the upstream's headers,
// before the body is read: for a response of known length that puts the
// headers in a write syscall of their own, then the body in a second one.
// A client cannot use the headers of such a response before its body
// anyway, so the Writer here lets that first flush wait for the first body
// bytes; every later flush goes through at once. Responses of unknown
// length (streams, Server-Sent Events) have no Content-Length and are
// flushed exactly as before, headers first. Measured in docs/bench-proxy.md.
package headerflush

import "net/http"

// Writer wraps a ResponseWriter; see the package comment.
type Writer struct {
	http.ResponseWriter
	wroteBody bool
}

// Write marks the body started, so that the next flush goes through.
func (w *Writer) Write(b []byte) (int, error) {
	if len(b) > 0 {
		w.wroteBody = true
	}
	return w.ResponseWriter.Write(b)
}

// FlushError flushes, unless nothing but the headers of a known-length
// response would go out: those leave with the first body bytes (or when
// the handler returns, for an empty body).
func (w *Writer) FlushError() error {
	if !w.wroteBody && w.Header().Get("Content-Length") != "" {
		return nil
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush is FlushError for callers that take an http.Flusher.
func (w *Writer) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the writer beneath (Hijack for
// WebSocket upgrades, deadlines).
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
