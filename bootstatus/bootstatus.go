// Package bootstatus reports how the instance's provisioning went, from the
// markers the image's entrypoint leaves (docs/boot.md): a lock file while
// PROVISIONING_SCRIPT runs, a "complete" marker once a run succeeded, and a
// "failed" marker holding `status=` and `message=` lines when one did not.
// The dashboard shows it, so that a template whose provisioning failed is
// not mistaken for one still starting.
package bootstatus

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/redact"
)

// Config names the three markers.
type Config struct {
	// LockFile exists while provisioning runs (PROVISIONING_LOCK).
	// Default: /.provisioning
	LockFile string `json:"lock_file,omitempty"`
	// DoneFile exists once a provisioning run succeeded
	// (PROVISIONING_DONE). Default: /.provisioning_complete
	DoneFile string `json:"done_file,omitempty"`
	// FailedFile holds `status=` and `message=` lines after a run or a
	// download failed (PROVISIONING_FAILED). Default: /.provisioning_failed
	FailedFile string `json:"failed_file,omitempty"`
}

// Default is the image's layout.
func Default() Config {
	return Config{LockFile: "/.provisioning", DoneFile: "/.provisioning_complete", FailedFile: "/.provisioning_failed"}
}

// Check checks that each marker is an absolute path.
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var check confdecl.Check
	for _, p := range []*string{&c.LockFile, &c.DoneFile, &c.FailedFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			check.Failf(confdecl.Name(&c, p), "%q: want an absolute path", *p)
		}
	}
	return check.Err()
}

// The states of provisioning.
const (
	// None: no marker; the instance has no PROVISIONING_SCRIPT (or was not
	// started by the image's entrypoint).
	None = "none"
	// Running: the script runs now (a retry after a failure included).
	Running = "running"
	// Complete: a run succeeded.
	Complete = "complete"
	// Failed: the last run or download failed; the next start retries.
	Failed = "failed"
)

// Status is what /api/boot answers.
type Status struct {
	Provisioning string `json:"provisioning"`
	// Code is the failed marker's status= (an exit code, or download,
	// refused, missing).
	Code string `json:"code,omitempty"`
	// Message is the failed marker's message=, with URL credentials and
	// query strings masked.
	Message string `json:"message,omitempty"`
	// Since is when the marker that decided the state was written.
	Since *time.Time `json:"since,omitempty"`
}

// maxMarker bounds what is read of the failed marker: two short lines.
const maxMarker = 4 << 10

// Read looks at the markers now. A marker that cannot be read counts as
// absent; the failed marker's text is bounded and masked.
func Read(c Config) Status {
	if t, ok := modTime(c.LockFile); ok {
		return Status{Provisioning: Running, Since: &t}
	}
	if t, ok := modTime(c.FailedFile); ok {
		st := Status{Provisioning: Failed, Since: &t}
		st.Code, st.Message = readFailed(c.FailedFile)
		return st
	}
	if t, ok := modTime(c.DoneFile); ok {
		return Status{Provisioning: Complete, Since: &t}
	}
	return Status{Provisioning: None}
}

func modTime(path string) (time.Time, bool) {
	if path == "" {
		return time.Time{}, false
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return time.Time{}, false
	}
	return fi.ModTime().UTC(), true
}

func readFailed(path string) (code, message string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	return parseFailed(io.LimitReader(f, maxMarker))
}

// parseFailed reads `status=` and `message=` lines; other lines are
// ignored.
func parseFailed(r io.Reader) (code, message string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxMarker)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		switch {
		case !ok:
		case k == "status":
			code = clean(v, 64)
		case k == "message":
			message = redact.URLs(clean(v, 1024))
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return code, message
	}
	return code, message
}

// clean keeps printable text, at most n bytes of it.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
