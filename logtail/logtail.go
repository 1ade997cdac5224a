// Package logtail reads the end of log files for agents: the last N lines
// of one file or of each, optionally only lines containing a search text,
// with terminal escapes removed and the output bounded. It reads through
// an *os.Root, so a name cannot lead out of the log directory. It never
// imports Caddy; the MCP server's logs tool calls it, after the log
// service has checked the names (logstream.Service.CheckFile).
package logtail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Bounds of one read.
const (
	// DefaultLines is the number of lines when none is asked for.
	DefaultLines = 100
	// MaxLines is the most lines per file.
	MaxLines = 2000
	// MaxBytes bounds the text returned, all files together.
	MaxBytes = 64 << 10
	// scanBytes is how much of a file's end is read to find its lines:
	// a search looks this far back at most.
	scanBytes = 4 << 20
)

// Options says what to read.
type Options struct {
	// Lines is how many lines per file (the last ones); 0 means
	// DefaultLines, more than MaxLines is an error.
	Lines int
	// Search keeps only lines containing this text (case-insensitive).
	Search string
}

// Check reports what is wrong with the options.
func (o Options) Check() error {
	if o.Lines < 0 || o.Lines > MaxLines {
		return fmt.Errorf("lines: %d: want 0 to %d", o.Lines, MaxLines)
	}
	if len(o.Search) > 200 {
		return errors.New("search: longer than 200 characters")
	}
	return nil
}

// File is what was read from one file.
type File struct {
	Name  string   `json:"name"`
	Lines []string `json:"lines"`
	// Truncated: older matching lines exist beyond what was returned
	// (the line count, the byte bound or the scanned window).
	Truncated bool `json:"truncated,omitempty"`
}

// escapes are terminal control sequences: CSI (colours, cursor moves) and
// OSC (titles, links).
var escapes = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]`)

// Plain removes terminal escapes and keeps, of a line redrawn with '\r',
// what the terminal last showed.
func Plain(line string) string {
	line = escapes.ReplaceAllString(line, "")
	if i := strings.LastIndexByte(strings.TrimRight(line, "\r"), '\r'); i >= 0 {
		line = line[i+1:]
	}
	return strings.TrimRight(line, "\r")
}

// Read reads names from root, in order, sharing MaxBytes among them.
func Read(root *os.Root, names []string, o Options) ([]File, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	n := o.Lines
	if n == 0 {
		n = DefaultLines
	}
	budget := MaxBytes
	out := make([]File, 0, len(names))
	for _, name := range names {
		f, err := readOne(root, name, n, strings.ToLower(o.Search), &budget)
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
	return out, nil
}

func readOne(root *os.Root, name string, n int, search string, budget *int) (File, error) {
	res := File{Name: name, Lines: []string{}}
	fh, err := root.Open(name)
	if err != nil {
		return res, fmt.Errorf("log %q: %w", name, err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return res, fmt.Errorf("log %q: %w", name, err)
	}
	start := max(fi.Size()-scanBytes, 0)
	buf, err := io.ReadAll(io.NewSectionReader(fh, start, fi.Size()-start))
	if err != nil {
		return res, fmt.Errorf("log %q: %w", name, err)
	}
	if start > 0 {
		// The first line read is cut: drop it.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
		res.Truncated = true
	}
	lines := strings.Split(strings.TrimSuffix(string(buf), "\n"), "\n")
	if len(buf) == 0 {
		lines = nil
	}
	var kept []string
	for i := len(lines) - 1; i >= 0; i-- {
		l := Plain(lines[i])
		if search != "" && !strings.Contains(strings.ToLower(l), search) {
			continue
		}
		if len(kept) == n || len(l)+1 > *budget {
			res.Truncated = true
			break
		}
		*budget -= len(l) + 1
		kept = append(kept, l)
	}
	for i := len(kept) - 1; i >= 0; i-- {
		res.Lines = append(res.Lines, kept[i])
	}
	return res, nil
}
