package tunnels

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
)

// quickURLPattern finds the quick tunnel URL in cloudflared's banner, e.g.
//
//	2024-05-01T10:00:01Z INF |  https://words-like-these.trycloudflare.com  |
//
// Labels are lower-case letters, digits and hyphens (DNS rules), so the
// match cannot swallow the box border or a trailing quote.
var quickURLPattern = regexp.MustCompile(`https://([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)\.trycloudflare\.com\b`)

// quickTunnelURLFromLine returns the https://….trycloudflare.com URL printed
// in one line of cloudflared output. It is the fallback for cloudflared
// builds whose metrics server has no /quicktunnel endpoint.
func quickTunnelURLFromLine(line string) (string, bool) {
	for _, loc := range quickURLPattern.FindAllStringIndex(line, -1) {
		m := line[loc[0]:loc[1]]
		if loc[1] < len(line) && isHostByte(line[loc[1]]) {
			continue // https://x.trycloudflare.com.attacker.net
		}
		if strings.HasPrefix(m, "https://api.") {
			continue // the service cloudflared asks, not a tunnel
		}
		return m, true
	}
	return "", false
}

func isHostByte(c byte) bool {
	return c == '.' || c == '-' || c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// isRateLimitLine reports whether a line of cloudflared output says that
// quick tunnel creation was refused by Cloudflare's rate limit. cloudflared
// cannot parse the 429 / error 1015 page and reports "failed to unmarshal
// quick Tunnel" (cloudflared issue 972), usually next to the status code.
func isRateLimitLine(line string) bool {
	l := strings.ToLower(line)
	return strings.Contains(l, "failed to unmarshal quick tunnel") ||
		strings.Contains(l, "429 too many requests") ||
		strings.Contains(l, "error code: 1015")
}

// maxLineLen bounds one line of child output: a child printing without
// newlines must not grow our memory.
const maxLineLen = 16 << 10

// lineWriter splits a child's output into lines (stripping \r, as terminals
// and go-cmd do) and hands each to emit. exec.Cmd calls Write from a single
// goroutine when Stdout and Stderr are the same writer, and the mutex keeps
// Flush safe after Wait.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			for len(w.buf) >= maxLineLen {
				rest := append([]byte(nil), w.buf[maxLineLen:]...)
				w.buf = w.buf[:maxLineLen]
				w.emitLocked()
				w.buf = append(w.buf, rest...)
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		for len(w.buf) > maxLineLen {
			rest := append([]byte(nil), w.buf[maxLineLen:]...)
			w.buf = w.buf[:maxLineLen]
			w.emitLocked()
			w.buf = append(w.buf, rest...)
		}
		w.emitLocked()
	}
	return n, nil
}

// Flush emits a final line that had no newline.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emitLocked()
	}
}

func (w *lineWriter) emitLocked() {
	line := strings.TrimRight(string(w.buf), "\r")
	line = strings.ReplaceAll(line, "\r", "")
	w.buf = w.buf[:0]
	w.emit(line)
}

// tail keeps the last n lines of output, the reason shown when a start fails.
type tail struct {
	mu    sync.Mutex
	lines []string
	n     int
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if strings.TrimSpace(line) == "" {
		return
	}
	t.lines = append(t.lines, clip(line, 500))
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return "(no output)"
	}
	return strings.Join(t.lines, " | ")
}
