package logtail

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.log", "one\n\x1b[32mtwo\x1b[0m\nthree ERROR x\n 10%\r 50%\r100%\nfive error\n")
	write("empty.log", "")
	write("big.log", strings.Repeat(strings.Repeat("x", 999)+"\n", 200))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, c := range []struct {
		name  string
		files []string
		o     Options
		want  []string
		trunc bool
		err   string
	}{
		{"last two", []string{"a.log"}, Options{Lines: 2}, []string{"100%", "five error"}, true, ""},
		{"all, escapes gone", []string{"a.log"}, Options{}, []string{"one", "two", "three ERROR x", "100%", "five error"}, false, ""},
		{"search", []string{"a.log"}, Options{Search: "error"}, []string{"three ERROR x", "five error"}, false, ""},
		{"search, one", []string{"a.log"}, Options{Search: "ERROR", Lines: 1}, []string{"five error"}, true, ""},
		{"empty", []string{"empty.log"}, Options{}, []string{}, false, ""},
		{"too many lines", []string{"a.log"}, Options{Lines: MaxLines + 1}, nil, false, "lines"},
		{"outside", []string{"../x.log"}, Options{}, nil, false, "x.log"},
		{"byte bound", []string{"big.log"}, Options{Lines: 200}, nil, true, ""},
	} {
		got, err := Read(root, c.files, c.o)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.name == "byte bound" {
			total := 0
			for _, l := range got[0].Lines {
				total += len(l) + 1
			}
			if total > MaxBytes || len(got[0].Lines) == 0 || !got[0].Truncated {
				t.Errorf("byte bound: %d bytes in %d lines, truncated %v", total, len(got[0].Lines), got[0].Truncated)
			}
			continue
		}
		if !reflect.DeepEqual(got[0].Lines, c.want) || got[0].Truncated != c.trunc {
			t.Errorf("%s: got %q (truncated %v), want %q (%v)", c.name, got[0].Lines, got[0].Truncated, c.want, c.trunc)
		}
	}
}

// FuzzPlain: whatever the line, no escape byte or carriage return is left.
func FuzzPlain(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[1;31mred\x1b[0m", "a\rb", "\x1b]0;title\x07x", "\x1b[", "x\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Plain(s)
		if strings.Contains(got, "\r") {
			t.Errorf("Plain(%q) = %q keeps a carriage return", s, got)
		}
		if !strings.Contains(s, "\x1b") && !strings.Contains(s, "\r") && got != s {
			t.Errorf("Plain(%q) = %q changed a plain line", s, got)
		}
	})
}
