package logstream

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// HTTP defaults.
const (
	DefaultTail         = 200
	MaxTail             = 5000
	DefaultQueue        = 256
	DefaultWriteTimeout = 10 * time.Second
	DefaultPing         = 15 * time.Second
	// Most events written as one WebSocket message or one SSE flush.
	batchEvents = 64
)

// HTTPError is a client error the caller turns into a status (Caddy:
// caddyhttp.Error), so error routes still apply.
type HTTPError struct {
	Status int
	Err    error
}

func (e *HTTPError) Error() string { return e.Err.Error() }
func (e *HTTPError) Unwrap() error { return e.Err }

func badRequest(err error) error { return &HTTPError{Status: http.StatusBadRequest, Err: err} }

// Handler serves the log API over a Service:
//
//	GET …/files                     the *.log files (name, size, mtime)
//	GET …/ws?file=a.log&tail=500    WebSocket: snapshots, then live events
//	GET …/stream?…                  the same as Server-Sent Events
//	GET …/download[?file=a.log]     one file, or a .tar.gz of the directory
//
// Routing looks at the last path element only, so the handler works
// wherever it is mounted (/api/logs/ws, /logs/ws, …).
type Handler struct {
	Svc *Service
	// OriginPatterns are extra browser origins allowed to open the
	// WebSocket (github.com/coder/websocket host patterns). Same-origin
	// requests (Origin host == Host) and requests without Origin are
	// always accepted.
	OriginPatterns []string
	Queue          int
	WriteTimeout   time.Duration
	Ping           time.Duration
	Log            *zap.Logger
}

func (h *Handler) defaults() {
	if h.Queue <= 0 {
		h.Queue = DefaultQueue
	}
	if h.WriteTimeout <= 0 {
		h.WriteTimeout = DefaultWriteTimeout
	}
	if h.Ping <= 0 {
		h.Ping = DefaultPing
	}
	if h.Log == nil {
		h.Log = zap.NewNop()
	}
}

// ServeHTTP answers one request. It returns *HTTPError for client errors;
// a client that goes away mid-stream is not an error.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	h.defaults()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return &HTTPError{Status: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	switch path.Base(r.URL.Path) {
	case "files", "logs", "/", ".":
		return h.serveFiles(w)
	case "ws":
		return h.serveWS(w, r)
	case "stream":
		return h.serveSSE(w, r)
	case "download":
		return h.serveDownload(w, r)
	}
	return &HTTPError{Status: http.StatusNotFound, Err: fmt.Errorf("no log endpoint %q (files, ws, stream, download)", r.URL.Path)}
}

func (h *Handler) serveFiles(w http.ResponseWriter) error {
	files, err := h.Svc.Files()
	if err != nil {
		return &HTTPError{Status: http.StatusInternalServerError, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(struct {
		Files []FileInfo `json:"files"`
	}{files})
}

// streamQuery reads ?file=…&file=…&tail=N.
func (h *Handler) streamQuery(r *http.Request) (files []string, tail int, err error) {
	q := r.URL.Query()
	seen := map[string]bool{}
	for _, f := range q["file"] {
		if err := h.Svc.CheckFile(f); err != nil {
			return nil, 0, badRequest(err)
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	tail = DefaultTail
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, 0, badRequest(fmt.Errorf("tail=%q: want a number from 0 to %d", v, MaxTail))
		}
		tail = min(n, MaxTail)
	}
	return files, tail, nil
}

func (h *Handler) serveWS(w http.ResponseWriter, r *http.Request) error {
	files, tail, err := h.streamQuery(r)
	if err != nil {
		return err
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.OriginPatterns})
	if err != nil {
		// Accept has answered (403 for a foreign Origin, 426 without an
		// upgrade); nothing else can be written.
		h.Log.Debug("websocket refused", zap.Error(err))
		return nil
	}
	defer c.CloseNow()
	// CloseRead answers pings and the close handshake; its context ends
	// when the client goes away. This goroutine is the only writer.
	ctx := c.CloseRead(r.Context())
	st := h.Svc.Open(files, tail, h.Queue)
	defer st.Close()

	// One timer per connection enforces the write deadline by closing the
	// connection, which fails the stuck write. A cancellable context per
	// write would do the same, but coder/websocket registers a
	// context.AfterFunc for every such write: at 10 000 lines/s to 50
	// clients that and the context were 90% of the allocations
	// (bench/logs.sh, heap profile).
	stalled := time.AfterFunc(h.WriteTimeout, func() { c.CloseNow() })
	stalled.Stop()
	defer stalled.Stop()
	var buf bytes.Buffer
	write := func(batch [][]byte) error {
		// One message carries the batch as newline-separated JSON objects:
		// under load, one write per batch instead of one per event.
		buf.Reset()
		for i, b := range batch {
			if i > 0 {
				buf.WriteByte('\n')
			}
			buf.Write(b)
		}
		stalled.Reset(h.WriteTimeout)
		err := c.Write(context.Background(), websocket.MessageText, buf.Bytes())
		if !stalled.Stop() {
			return fmt.Errorf("write took longer than %v", h.WriteTimeout)
		}
		return err
	}
	if snap := st.Snapshot(); len(snap) > 0 {
		if err := write(snap); err != nil {
			return nil
		}
	}
	tick := time.NewTicker(h.Ping)
	defer tick.Stop()
	for {
		batch, err := st.Next(ctx, tick.C, batchEvents)
		if err != nil {
			if errors.Is(err, ErrTooSlow) {
				_ = c.Close(websocket.StatusPolicyViolation, "too slow")
			} else if ctx.Err() == nil {
				_ = c.Close(websocket.StatusGoingAway, "log service stopping")
			}
			return nil
		}
		if err := write(batch); err != nil {
			// A client that cannot take a message within the write
			// timeout is dropped; the tailer never waited for it.
			h.Log.Debug("log websocket write failed; dropping client", zap.Error(err))
			return nil
		}
	}
}

func (h *Handler) serveSSE(w http.ResponseWriter, r *http.Request) error {
	files, tail, err := h.streamQuery(r)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	ctx := r.Context()
	st := h.Svc.Open(files, tail, h.Queue)
	defer st.Close()

	var buf bytes.Buffer
	write := func(prefix string, batch [][]byte) error {
		buf.Reset()
		buf.WriteString(prefix)
		for _, b := range batch {
			buf.WriteString("data: ")
			buf.Write(b)
			buf.WriteString("\n\n")
		}
		// A vanished client (no FIN, a dead tunnel) blocks a write for
		// minutes without a deadline. ErrNotSupported just means no deadline.
		if err := rc.SetWriteDeadline(time.Now().Add(h.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		return rc.Flush()
	}
	// retry: how long EventSource waits before reconnecting.
	if err := write("retry: 2000\n\n", st.Snapshot()); err != nil {
		return nil
	}
	tick := time.NewTicker(h.Ping)
	defer tick.Stop()
	for {
		batch, err := st.Next(ctx, tick.C, batchEvents)
		if err != nil {
			return nil // client gone, or too slow: ending the response is the answer
		}
		if err := write("", batch); err != nil {
			return nil
		}
	}
}

func (h *Handler) serveDownload(w http.ResponseWriter, r *http.Request) error {
	if name := r.URL.Query().Get("file"); name != "" || r.URL.Query().Has("file") {
		return h.downloadFile(w, r, name)
	}
	root, err := os.OpenRoot(h.Svc.Dir())
	if err != nil {
		return &HTTPError{Status: http.StatusNotFound, Err: fmt.Errorf("log directory %s: %w", h.Svc.Dir(), err)}
	}
	defer root.Close()
	stamp := time.Now().UTC().Format("20060102-150405")
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "portal-logs-" + stamp + ".tar.gz"}))
	if r.Method == http.MethodHead {
		return nil
	}
	if err := WriteTarGz(w, root); err != nil {
		// Headers are gone; a cut stream is what the client sees.
		h.Log.Debug("log archive cut short", zap.Error(err))
	}
	return nil
}

func (h *Handler) downloadFile(w http.ResponseWriter, r *http.Request, name string) error {
	if err := h.Svc.CheckFile(name); err != nil {
		return badRequest(err)
	}
	root, err := os.OpenRoot(h.Svc.Dir())
	if err != nil {
		return badRequest(err)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		return badRequest(fmt.Errorf("%w %q: %v", ErrBadName, name, err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return badRequest(fmt.Errorf("%w %q: not a regular file", ErrBadName, name))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, fi.ModTime(), f)
	return nil
}

// WriteTarGz writes every regular file directly inside root as a .tar.gz.
// Symlinks, directories and devices are skipped (Lstat), and os.Root keeps
// every open inside the directory even if a name is swapped meanwhile.
// A file that shrinks while being read is padded with NULs to the size in
// its header; one that grows is cut at that size.
func WriteTarGz(w io.Writer, root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	_ = d.Close()
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		fi, err := root.Lstat(e.Name())
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := addFile(tw, root, e.Name()); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func addFile(tw *tar.Writer, root *os.Root, name string) error {
	f, err := root.OpenFile(name, os.O_RDONLY|nofollow, 0)
	if err != nil {
		return nil // vanished or swapped for a link: skip it
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     fi.Size(),
		Mode:     0o644,
		ModTime:  fi.ModTime(),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
	if err != nil {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	if n < hdr.Size {
		if _, err := io.CopyN(tw, zeroReader{}, hdr.Size-n); err != nil {
			return err
		}
	}
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
