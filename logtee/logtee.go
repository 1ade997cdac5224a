// Package logtee copies a program's output to three places: the portal log
// (raw: colours and '\r' kept, for the live log view), a plain log (ANSI
// stripped, '\r' as a line break, for grep and humans) and stdout (plain,
// for supervisord's own capture). Both logs are size-capped so that a
// chatty program cannot fill the disk.
package logtee

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Defaults: past MaxBytes a log keeps its last KeepBytes, cut at a line.
const (
	DefaultMaxBytes  = 5 << 20
	DefaultKeepBytes = 1 << 20
)

// Options configure Run.
type Options struct {
	// PortalPath is the raw log (/var/log/portal/NAME.log).
	PortalPath string
	// PlainPath is the stripped log. Default: plainPathFor(PortalPath).
	PlainPath string
	MaxBytes  int64
	KeepBytes int64
	// Stdout receives the plain stream (nil: discarded); Stderr gets
	// the first error of each destination (nil: discarded).
	Stdout io.Writer
	Stderr io.Writer
}

// plainPathFor maps /var/log/portal/NAME.log to /var/log/NAME.log: the
// same name, one directory up.
func plainPathFor(portal string) string {
	dir := filepath.Dir(filepath.Clean(portal))
	return filepath.Join(filepath.Dir(dir), filepath.Base(portal))
}

// Run copies in to the three destinations until in ends. A destination
// that fails is reported once on Stderr and then skipped: the program
// whose output is teed must never block or die because a disk is full.
// It returns the read error, if any.
func Run(in io.Reader, o Options) error {
	if o.PortalPath == "" {
		return errors.New("log-tee: no portal log path")
	}
	if o.PlainPath == "" {
		o.PlainPath = plainPathFor(o.PortalPath)
	}
	if filepath.Clean(o.PlainPath) == filepath.Clean(o.PortalPath) {
		return fmt.Errorf("log-tee: plain log %s is the portal log itself", o.PlainPath)
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.KeepBytes <= 0 || o.KeepBytes > o.MaxBytes {
		o.KeepBytes = min(DefaultKeepBytes, o.MaxBytes)
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	raw := &dest{name: o.PortalPath, stderr: o.Stderr}
	plain := &dest{name: o.PlainPath, stderr: o.Stderr}
	out := &dest{name: "stdout", w: o.Stdout, stderr: o.Stderr}
	for _, d := range []*dest{raw, plain} {
		f, err := openCapped(d.name, o.MaxBytes, o.KeepBytes)
		if err != nil {
			d.fail(err)
			continue
		}
		defer f.Close()
		d.w = f
	}
	var strip Stripper
	buf := make([]byte, 32<<10)
	var clean []byte
	for {
		n, err := in.Read(buf)
		if n > 0 {
			raw.write(buf[:n])
			clean = strip.Write(clean[:0], buf[:n])
			plain.write(clean)
			out.write(clean)
		}
		if err != nil {
			clean = strip.Flush(clean[:0])
			plain.write(clean)
			out.write(clean)
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("log-tee: reading input: %w", err)
		}
	}
}

type dest struct {
	name   string
	w      io.Writer
	stderr io.Writer
	failed bool
}

func (d *dest) write(p []byte) {
	if d.w == nil || d.failed || len(p) == 0 {
		return
	}
	if _, err := d.w.Write(p); err != nil {
		d.fail(err)
	}
}

func (d *dest) fail(err error) {
	d.failed = true
	fmt.Fprintf(d.stderr, "log-tee: %s: %v (no more output goes there)\n", d.name, err)
}

// CappedFile appends to a file and, once it passes max bytes, keeps only
// its last keep bytes starting at a line boundary. It trims in place
// (same inode): readers following the file see a truncation, which the
// portal's tailer handles as a restart.
type CappedFile struct {
	f         *os.File
	size      int64
	max, keep int64
}

// openCapped opens (creating it and its directory) path for appending,
// trimming it at once if it is already too big.
func openCapped(path string, max, keep int64) (*CappedFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	c := &CappedFile{f: f, size: st.Size(), max: max, keep: keep}
	if c.size > c.max {
		if err := c.trim(); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *CappedFile) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	c.size += int64(n)
	if err != nil {
		return n, err
	}
	if c.size > c.max {
		if err := c.trim(); err != nil {
			return n, fmt.Errorf("trimming: %w", err)
		}
	}
	return n, nil
}

// trim keeps what follows the first '\n' of the last keep bytes (nothing,
// if that stretch holds no line break: it is one runaway line).
func (c *CappedFile) trim() error {
	r, err := os.Open(c.f.Name())
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := r.Stat()
	if err != nil {
		return err
	}
	keep := min(c.keep, st.Size())
	tail := make([]byte, keep)
	if _, err := r.ReadAt(tail, st.Size()-keep); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if keep < st.Size() {
		if i := bytes.IndexByte(tail, '\n'); i >= 0 {
			tail = tail[i+1:]
		} else {
			tail = tail[:0]
		}
	}
	if err := c.f.Truncate(0); err != nil {
		return err
	}
	if _, err := c.f.Write(tail); err != nil {
		return err
	}
	c.size = int64(len(tail))
	return nil
}

// Close closes the file.
func (c *CappedFile) Close() error { return c.f.Close() }

// Size is the file's size as written through c.
func (c *CappedFile) Size() int64 { return c.size }
