package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// bufSize is the one buffer each transfer reads into: memory stays fixed
// whatever the file's size.
const bufSize = 256 << 10

// fileJob is one file to fetch into place.
type fileJob struct {
	url   string // what is requested
	kind  string // decides the Authorization header
	label string // for logs (masked when logged)
	// dest is the final path. When it is "", the file goes into dir under
	// the name the server gives (Content-Disposition), else fallback.
	dest, dir, fallback string
	partial             string // kept between attempts and runs
	size                int64  // expected size, -1 when unknown
	sha256              string // expected hex digest, "" when unknown
	nonEmpty            bool   // an empty body is a failure (the reference's wget rule)

	counted    int64 // bytes this file has added to the tracker
	totalAdded bool  // whether its size is in the tracker's total
	final      string
}

// partialName is the partial file kept beside dest: hidden, so that a
// directory listing (ComfyUI's model list) does not show it.
func partialName(dest string) string {
	return filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".part")
}

// resumeMeta is stored beside a partial file so that a later attempt only
// resumes the same URL's same version.
type resumeMeta struct {
	URLHash   string `json:"url_sha256"` // the URL itself may hold a credential
	Validator string `json:"validator,omitempty"`
}

func urlHash(u string) string {
	s := sha256.Sum256([]byte(u))
	return hex.EncodeToString(s[:])
}

func exists(p string) (int64, bool) {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// present says whether f's destination is already there: the reference
// skips a file that exists; we also want its size right when we know it.
func (f *fileJob) present(p string) bool {
	n, ok := exists(p)
	return ok && (f.size < 0 || n == f.size)
}

// lockFile takes an exclusive flock on fd, waiting while another process
// (or another download of this run) holds it, until ctx ends.
func lockFile(ctx context.Context, fd *os.File) error {
	for i := 0; ; i++ {
		err := unix.Flock(int(fd.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// attempt is one try at f: it resumes a kept partial file when the server
// allows, streams the rest, checks size and digest, and renames into place.
// A transfer cut short keeps its partial file for the next try.
func (r *runner) attempt(ctx context.Context, f *fileJob, tr *tracker) error {
	if f.dest != "" && f.present(f.dest) {
		r.skip(f, tr, f.dest)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(f.partial), 0o755); err != nil {
		return err
	}
	part, err := os.OpenFile(f.partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer part.Close()
	if err := lockFile(ctx, part); err != nil {
		return err
	}
	if f.dest != "" && f.present(f.dest) { // another process finished it while we waited
		removeIfSame(f.partial, part)
		r.skip(f, tr, f.dest)
		return nil
	}
	metaPath := f.partial + ".meta"
	st, err := part.Stat()
	if err != nil {
		return err
	}
	offset := st.Size()
	meta := readMeta(metaPath)
	if offset > 0 && (meta.URLHash != urlHash(f.url) || (f.size >= 0 && offset > f.size)) {
		offset = 0 // another URL's or version's bytes
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stall := time.AfterFunc(r.opts.StallTimeout, cancel)
	defer stall.Stop()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, f.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", userAgent)
	if a := r.authFor(req.URL, f.kind); a != "" {
		req.Header.Set("Authorization", a)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		if meta.Validator != "" {
			req.Header.Set("If-Range", meta.Validator)
		}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return stalled(ctx, sctx, err, r.opts.StallTimeout)
	}
	defer resp.Body.Close()

	total := int64(-1)
	complete := false
	switch {
	case resp.StatusCode == http.StatusOK:
		offset, total = 0, resp.ContentLength
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		start, n, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			_ = part.Truncate(0)
			return fmt.Errorf("resume: server answered range %q for offset %d", resp.Header.Get("Content-Range"), offset)
		}
		total = n
		tr.markResumed()
		r.log("Resuming %s at byte %d", f.label, offset)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		if _, n, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && n == offset {
			total, complete = n, true // the partial file is whole
			break
		}
		_ = part.Truncate(0)
		return fmt.Errorf("resume: server refused range from %d", offset)
	default:
		return &statusError{code: resp.StatusCode, url: f.url}
	}

	if f.dest == "" {
		name := serverFileName(resp.Header.Get("Content-Disposition"), f.fallback)
		dest := filepath.Join(f.dir, name)
		tr.setDest(dest)
		if _, ok := exists(dest); ok {
			removeIfSame(f.partial, part)
			_ = os.Remove(metaPath)
			r.skip(f, tr, dest)
			return nil
		}
		f.dest = dest
	}
	if f.size >= 0 && total >= 0 && total != f.size {
		return fmt.Errorf("server sends %d bytes, the hub lists %d", total, f.size)
	}
	if !f.totalAdded && total >= 0 {
		tr.addTotal(total)
		f.totalAdded = true
	}
	if offset == 0 {
		if err := part.Truncate(0); err != nil {
			return err
		}
		if err := writeMeta(metaPath, resumeMeta{URLHash: urlHash(f.url), Validator: validator(resp.Header)}); err != nil {
			return err
		}
	}
	r.settle(f, tr, offset)

	var h hash.Hash
	if f.sha256 != "" {
		h = sha256.New()
		if offset > 0 {
			if _, err := io.Copy(h, io.NewSectionReader(part, 0, offset)); err != nil {
				return err
			}
		}
	}
	got := offset
	if !complete {
		n, err := copyBody(part, offset, resp.Body, h, tr, f, func() { stall.Reset(r.opts.StallTimeout) })
		got += n
		if err != nil {
			return stalled(ctx, sctx, err, r.opts.StallTimeout)
		}
	}
	if total >= 0 && got != total {
		return fmt.Errorf("got %d of %d bytes", got, total)
	}
	if f.nonEmpty && got == 0 {
		return errors.New("the server sent an empty file")
	}
	if h != nil {
		if sum := hex.EncodeToString(h.Sum(nil)); sum != f.sha256 {
			_ = os.Remove(f.partial)
			_ = os.Remove(metaPath)
			r.settle(f, tr, 0)
			return fmt.Errorf("sha256 mismatch: got %s, the hub says %s (file removed)", sum, f.sha256)
		}
	}
	if err := part.Sync(); err != nil {
		return err
	}
	if err := os.Rename(f.partial, f.dest); err != nil {
		return err
	}
	_ = os.Remove(metaPath)
	f.final = f.dest
	r.log("Successfully downloaded: %s", f.dest)
	return nil
}

// skip leaves the file at p as it is (the reference's "already exists")
// and counts it as fetched.
func (r *runner) skip(f *fileJob, tr *tracker, p string) {
	r.log("File already exists: %s (skipping)", p)
	f.final = p
	n, _ := exists(p)
	if !f.totalAdded {
		tr.addTotal(n)
		f.totalAdded = true
	}
	r.settle(f, tr, n)
}

// settle makes the tracker count n bytes for f (what is on disk now).
func (r *runner) settle(f *fileJob, tr *tracker, n int64) {
	if n < 0 {
		n = 0
	}
	tr.add(n - f.counted)
	f.counted = n
}

// copyBody streams body into part from offset through one fixed buffer.
func copyBody(part *os.File, offset int64, body io.Reader, h hash.Hash, tr *tracker, f *fileJob, alive func()) (int64, error) {
	if _, err := part.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	buf := make([]byte, bufSize)
	wb := writeback{f: part, started: offset}
	var n int64
	for {
		k, rerr := body.Read(buf)
		if k > 0 {
			alive()
			if _, err := part.Write(buf[:k]); err != nil {
				return n, err
			}
			if h != nil {
				h.Write(buf[:k])
			}
			n += int64(k)
			wb.wrote(offset + n)
			f.counted += int64(k)
			tr.add(int64(k))
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// stalled names a transfer the stall watchdog ended.
func stalled(parent, sctx context.Context, err error, after time.Duration) error {
	if parent.Err() == nil && sctx.Err() != nil {
		return fmt.Errorf("stalled: nothing received for %s", after)
	}
	return err
}

// removeIfSame removes p if it is still the file held open as fd (not a
// file another process created there since).
func removeIfSame(p string, fd *os.File) {
	a, err1 := os.Stat(p)
	b, err2 := fd.Stat()
	if err1 == nil && err2 == nil && os.SameFile(a, b) {
		_ = os.Remove(p)
		_ = os.Remove(p + ".meta")
	}
}

func readMeta(p string) resumeMeta {
	var m resumeMeta
	b, err := os.ReadFile(p)
	if err == nil && len(b) < 4096 {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

func writeMeta(p string, m resumeMeta) error {
	b, _ := json.Marshal(m)
	return os.WriteFile(p, b, 0o644)
}

// validator is what If-Range may carry: a strong ETag, else Last-Modified.
func validator(h http.Header) string {
	if e := h.Get("ETag"); e != "" && !strings.HasPrefix(e, "W/") {
		return e
	}
	return h.Get("Last-Modified")
}

var contentRangeRE = regexp.MustCompile(`^bytes (?:(\d+)-\d+|\*)/(\d+)$`)

// parseContentRange reads "bytes START-END/TOTAL" or "bytes */TOTAL".
func parseContentRange(v string) (start, total int64, ok bool) {
	m := contentRangeRE.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, 0, false
	}
	total, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if m[1] != "" {
		if start, err = strconv.ParseInt(m[1], 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

// serverFileName is the file name a Content-Disposition header gives,
// reduced to a base name that cannot leave the directory; fallback when it
// gives none.
func serverFileName(cd, fallback string) string {
	var name string
	if _, params, err := mime.ParseMediaType(cd); err == nil {
		name = params["filename"]
	} else {
		for _, part := range strings.Split(cd, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "filename") {
				name = strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
	}
	if name = safeBase(name); name == "" {
		return fallback
	}
	return name
}

// safeBase is the last element of a name from elsewhere, or "" when that is
// no usable file name.
func safeBase(name string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	name = path.Base(name)
	if name == "." || name == ".." || name == "/" || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return ""
	}
	return name
}

// urlFileName is the reference's fallback: the URL path's last segment,
// else "download".
func urlFileName(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if n := safeBase(u.Path); n != "" {
			return n
		}
	}
	return "download"
}

const userAgent = "instance-portal-provisioner"
