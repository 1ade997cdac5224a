package logstream

import (
	"archive/tar"
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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// Tail limits.
const (
	DefaultTail = 200
	MaxTail     = 5000
)

// Handler serves the log API over a Service:
//
//	GET …/files                     the *.log files (name, size, mtime, followed)
//	GET …/ws?file=a.log&tail=500    WebSocket: a snapshot, then live events
//	GET …/stream?…                  the same as Server-Sent Events
//	GET …/download?file=a.log       one file
//	GET …/download                  a .tar.gz of the directory
//	GET …/download?all=1            a .tar.gz of the directory (under portal/)
//	                                and PlainDir's *.log files
//
// Routing looks at the last path element only, so the handler works
// wherever it is mounted (/api/logs/ws, /logs/ws, …). A bad request is
// answered 400 with a JSON body naming what was wrong; the handler
// writes every answer itself.
type Handler struct {
	svc *Service
	cfg Config // defaults filled in, once: requests only read it
	log *zap.Logger
}

// NewHandler serves svc with the per-client settings of cfg (zero fields
// take their defaults here, once, so concurrent requests share a handler
// they never write). cfg should have passed Validate.
func NewHandler(svc *Service, cfg Config, log *zap.Logger) *Handler {
	if log == nil {
		log = zap.NewNop()
	}
	return &Handler{svc: svc, cfg: cfg.filled(), log: log}
}

// Service is the Service the handler serves.
func (h *Handler) Service() *Service { return h.svc }

// ServeHTTP answers one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed: the log API answers GET and HEAD", r.Method))
		return
	}
	switch path.Base(r.URL.Path) {
	case "files", "logs", "/", ".":
		h.serveFiles(w, r)
	case "ws":
		h.serveWS(w, r)
	case "stream":
		h.serveSSE(w, r)
	case "download":
		h.serveDownload(w, r)
	default:
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("no log endpoint %q: try files, ws, stream or download", path.Base(r.URL.Path)))
	}
}

// fail answers status with {"error": "<what was wrong>"}.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if c := h.log.Check(zap.DebugLevel, "log API request refused"); c != nil {
		c.Write(zap.Int("status", status), zap.String("path", r.URL.Path), zap.Error(err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	_, _ = w.Write(append(b, '\n'))
}

func (h *Handler) serveFiles(w http.ResponseWriter, r *http.Request) {
	files, err := h.svc.Files()
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(struct {
		Files    []FileInfo `json:"files"`
		MaxFiles int        `json:"max_files"`
	}{files, h.svc.cfg.MaxFiles})
}

// streamQuery reads ?file=…&file=…&tail=N.
func (h *Handler) streamQuery(r *http.Request) (files []string, tail int, err error) {
	q := r.URL.Query()
	seen := map[string]bool{}
	for _, f := range q["file"] {
		if err := h.svc.CheckFile(f); err != nil {
			return nil, 0, err
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	if len(files) > h.svc.cfg.MaxFiles {
		return nil, 0, fmt.Errorf("%d files named: at most %d (max_files) can be followed; name none for all", len(files), h.svc.cfg.MaxFiles)
	}
	tail = DefaultTail
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, 0, fmt.Errorf("tail=%q: want a number from 0 to %d", clip(v, 40), MaxTail)
		}
		tail = min(n, MaxTail)
	}
	return files, tail, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (h *Handler) streamOptions(tail int) StreamOptions {
	return StreamOptions{Tail: tail, QueueBytes: h.cfg.QueueBytes, SnapshotBytes: h.cfg.SnapshotBytes, Flush: h.cfg.FlushInterval.Std()}
}

// bufPool holds the buffers messages are assembled in: only clients in
// the middle of a write hold one, so 200 quiet clients do not each keep
// 64 KiB.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// pieces calls write with the events joined by sep (and each preceded by
// prefix), in pieces of at most MaxMessageBytes (an event is never split).
func pieces(evs [][]byte, prefix, sep string, write func([]byte) error) error {
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 2*MaxMessageBytes {
			*bp = buf[:0]
			bufPool.Put(bp)
		}
	}()
	for _, e := range evs {
		if len(buf) > 0 && len(buf)+len(sep)+len(prefix)+len(e) > MaxMessageBytes {
			if err := write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if len(buf) > 0 {
			buf = append(buf, sep...)
		}
		buf = append(buf, prefix...)
		buf = append(buf, e...)
	}
	if len(buf) == 0 {
		return nil
	}
	return write(buf)
}

// streamsRetryAfter is the Retry-After, in seconds, of a client refused
// for max_clients.
const streamsRetryAfter = 10

// admit reads a stream's query and takes a stream slot. It answers 400 for
// a bad query, or 503 with Retry-After when max_clients streams are open,
// and then reports false. The caller calls the returned release when its
// stream ends.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) (files []string, tail int, release func(), ok bool) {
	files, tail, err := h.streamQuery(r)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err)
		return nil, 0, nil, false
	}
	if n := h.svc.streams.Add(1); n > int64(h.cfg.MaxClients) {
		h.svc.streams.Add(-1)
		w.Header().Set("Retry-After", strconv.Itoa(streamsRetryAfter))
		h.fail(w, r, http.StatusServiceUnavailable, fmt.Errorf("%d log streams are open, the most allowed (max_clients); retry in %d s or close another viewer", h.cfg.MaxClients, streamsRetryAfter))
		return nil, 0, nil, false
	}
	return files, tail, func() { h.svc.streams.Add(-1) }, true
}

// pump sends the stream's snapshot, then each batch as it comes (the
// snapshot again after a lag), until an error ends it: the client gone, a
// failed write, the service stopping. An idle ping interval sends an
// empty batch.
func (h *Handler) pump(ctx context.Context, st *Stream, send func([][]byte) error) error {
	if err := st.Snapshot(ctx, send); err != nil {
		return err
	}
	tick := time.NewTicker(h.cfg.PingInterval.Std())
	defer tick.Stop()
	for {
		b, err := st.Next(ctx, tick.C)
		if err == nil {
			if b.Lagged {
				err = st.Resync(ctx, send)
			} else {
				err = send(b.Events)
			}
		}
		if err != nil {
			return err
		}
	}
}

func (h *Handler) serveWS(w http.ResponseWriter, r *http.Request) {
	files, tail, release, ok := h.admit(w, r)
	if !ok {
		return
	}
	defer release()
	// Open (subscribe, take the snapshot's cut) before the handshake's
	// 101, so that a line written once the client is connected reaches it
	// whatever its tail (see Open). The event stream opens before its
	// first flush for the same reason.
	st := h.svc.Open(files, h.streamOptions(tail))
	defer st.Close()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.AllowedOrigins})
	if err != nil {
		// Accept has answered (403 for a foreign Origin, 426 without an
		// upgrade); nothing else can be written.
		h.log.Debug("log websocket refused", zap.Error(err))
		return
	}
	defer c.CloseNow()
	// CloseRead answers pings and the close handshake; its context ends
	// when the client goes away. This goroutine is the only writer.
	ctx := c.CloseRead(r.Context())

	// One timer per connection enforces the write deadline by closing the
	// connection, which fails the stuck write. A cancellable context per
	// write would do the same, but coder/websocket registers a
	// context.AfterFunc for every such write: at 10 000 lines/s to 50
	// clients that and the context were 90% of the allocations.
	timeout := h.cfg.WriteTimeout.Std()
	stalled := time.AfterFunc(timeout, func() { c.CloseNow() })
	stalled.Stop()
	defer stalled.Stop()
	writeMsg := func(b []byte) error {
		stalled.Reset(timeout)
		err := c.Write(context.Background(), websocket.MessageText, b)
		if !stalled.Stop() {
			return fmt.Errorf("write took longer than write_timeout (%v)", timeout)
		}
		return err
	}
	// One message carries several events, separated by '\n'.
	send := func(evs [][]byte) error { return pieces(evs, "", "\n", writeMsg) }
	switch err := h.pump(ctx, st, send); {
	case ctx.Err() != nil:
		h.log.Debug("log websocket closed by the client")
	case errors.Is(err, ErrTooSlow):
		_ = c.Close(websocket.StatusPolicyViolation, "too slow")
		h.log.Debug("log websocket client dropped: kept falling behind")
	case errors.Is(err, errServiceStopped):
		_ = c.Close(websocket.StatusGoingAway, "log service stopping")
	default:
		// A client that cannot take a message within the write
		// timeout is dropped; the tailer never waited for it.
		h.log.Debug("log websocket write failed; dropping the client", zap.Error(err))
	}
}

func (h *Handler) serveSSE(w http.ResponseWriter, r *http.Request) {
	files, tail, release, ok := h.admit(w, r)
	if !ok {
		return
	}
	defer release()
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	ctx := r.Context()
	st := h.svc.Open(files, h.streamOptions(tail))
	defer st.Close()

	timeout := h.cfg.WriteTimeout.Std()
	flush := func(b []byte) error {
		// A vanished client (no FIN, a dead tunnel) blocks a write for
		// minutes without a deadline. ErrNotSupported just means no deadline.
		if err := rc.SetWriteDeadline(time.Now().Add(timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	// One data: line per event; one flush per piece.
	send := func(evs [][]byte) error {
		return pieces(evs, "data: ", "\n\n", func(b []byte) error { return flush(append(b, '\n', '\n')) })
	}
	// retry: how long EventSource waits before reconnecting.
	err := flush([]byte("retry: 2000\n\n"))
	if err == nil {
		err = h.pump(ctx, st, send)
	}
	// Ending the response is the answer in every case; a client that left
	// is routine.
	if ctx.Err() != nil {
		h.log.Debug("log event stream closed by the client")
	} else {
		h.log.Debug("log event stream ended", zap.Error(err))
	}
}

func (h *Handler) serveDownload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("file") {
		h.downloadFile(w, r, q.Get("file"))
		return
	}
	all := false
	if v := q.Get("all"); v != "" || q.Has("all") {
		b, err := strconv.ParseBool(v)
		if err != nil && v != "" {
			h.fail(w, r, http.StatusBadRequest, fmt.Errorf("all=%q: want 1, true, 0 or false", clip(v, 40)))
			return
		}
		all = v == "" || b
	}
	root, err := os.OpenRoot(h.svc.Dir())
	if err != nil {
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("log directory %s cannot be opened", h.svc.Dir()))
		return
	}
	defer root.Close()
	parts := []archivePart{{root: root}}
	name := "portal-logs-"
	if all {
		name = "logs-"
		parts[0].prefix = archivePrefix(h.svc.Dir())
		if plain := filepath.Clean(h.cfg.PlainDir); plain != h.svc.Dir() {
			if proot, err := os.OpenRoot(plain); err == nil {
				defer proot.Close()
				parts = append(parts, archivePart{root: proot, only: func(n string) bool { return ValidateName(n) == nil }})
			}
		}
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name + stamp + ".tar.gz"}))
	if r.Method == http.MethodHead {
		return
	}
	if err := writeArchive(w, parts); err != nil {
		// Headers are gone; a cut stream is what the client sees.
		h.log.Debug("log archive cut short", zap.Error(err))
	}
}

// archivePrefix is the folder the portal directory's files go under in
// the "everything" archive: its own name, as under /var/log.
func archivePrefix(dir string) string {
	base := filepath.Base(dir)
	if base == "." || base == "/" || base == "" || strings.HasPrefix(base, ".") {
		base = "portal"
	}
	return base + "/"
}

func (h *Handler) downloadFile(w http.ResponseWriter, r *http.Request, name string) {
	if err := h.svc.CheckFile(name); err != nil {
		h.fail(w, r, http.StatusBadRequest, err)
		return
	}
	root, err := os.OpenRoot(h.svc.Dir())
	if err != nil {
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("log directory %s cannot be opened", h.svc.Dir()))
		return
	}
	defer root.Close()
	f, err := root.OpenFile(name, os.O_RDONLY|nofollow|nonblock, 0)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, nameErr(name, "cannot be opened"))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !servable(fi) {
		h.fail(w, r, http.StatusBadRequest, nameErr(name, "is not a regular file with a single link"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// archivePart is one directory of an archive: its regular files directly
// inside (only those only accepts, if set), named prefix+name.
type archivePart struct {
	root   *os.Root
	prefix string
	only   func(name string) bool
}

// WriteTarGz writes every regular file directly inside root as a .tar.gz.
func WriteTarGz(w io.Writer, root *os.Root) error {
	return writeArchive(w, []archivePart{{root: root}})
}

// writeArchive writes the parts' files as one .tar.gz. Symlinks,
// directories and devices are skipped (Lstat, then O_NOFOLLOW), and
// os.Root keeps every open inside its directory even if a name is swapped
// meanwhile. A file that shrinks while being read is padded with NULs to
// the size in its header; one that grows is cut at that size.
func writeArchive(w io.Writer, parts []archivePart) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, p := range parts {
		d, err := p.root.Open(".")
		if err != nil {
			return err
		}
		entries, err := d.ReadDir(-1)
		_ = d.Close()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if p.only != nil && !p.only(e.Name()) {
				continue
			}
			fi, err := p.root.Lstat(e.Name())
			if err != nil || !servable(fi) {
				continue
			}
			if err := addFile(tw, p.root, e.Name(), p.prefix); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func addFile(tw *tar.Writer, root *os.Root, name, prefix string) error {
	f, err := root.OpenFile(name, os.O_RDONLY|nofollow|nonblock, 0)
	if err != nil {
		return nil // vanished or swapped for a link: skip it
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !servable(fi) {
		return nil
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     prefix + name,
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
