package logtee

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestStripper(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain\n", "plain\n"},
		{"\x1b[32mINFO\x1b[0m: ok\n", "INFO: ok\n"},
		{"\r 10%\r 20%\r100%\n", "\n 10%\n 20%\n100%\n"},
		{"crlf\r\nnext\r\n", "crlf\nnext\n"},
		{"\x1b]8;;http://x\x07link\x1b]8;;\x1b\\ done\n", "link done\n"},
		{"bar\x1b[A\x1b[2K\rnew\n", "bar\nnew\n"},
		{"bell\x07 nul\x00 tab\t é\n", "bell nul tab\t é\n"},
		{"trailing\r", "trailing\n"},
	}
	for _, tc := range tests {
		var s Stripper
		got := s.Flush(s.Write(nil, []byte(tc.in)))
		if string(got) != tc.want {
			t.Errorf("%q: got %q want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzStripper(f *testing.F) {
	for _, s := range []string{"\x1b[31mx\x1b[0m\r\n", "\x1b]0;title\x07a\rb", "\x1bPq\x1b\\z"} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, in []byte, k uint8) {
		var a Stripper
		whole := a.Flush(a.Write(nil, in))
		var b Stripper
		step := int(k)%8 + 1
		var parts []byte
		for i := 0; i < len(in); i += step {
			parts = b.Write(parts, in[i:min(i+step, len(in))])
		}
		parts = b.Flush(parts)
		if !bytes.Equal(whole, parts) {
			t.Fatalf("split changed output: %q vs %q", whole, parts)
		}
		if bytes.ContainsAny(whole, "\x1b\r\x00\x07") {
			t.Fatalf("control left in %q", whole)
		}
	})
}

func TestRunThreeOutputsAndCap(t *testing.T) {
	dir := t.TempDir()
	portal := filepath.Join(dir, "portal", "app.log")
	var stdout, stderr bytes.Buffer
	var in strings.Builder
	for i := range 3000 {
		in.WriteString("\x1b[32mline\x1b[0m " + strings.Repeat("x", 40) + " " + strconv.Itoa(i) + "\r\n")
	}
	err := Run(strings.NewReader(in.String()), Options{PortalPath: portal, MaxBytes: 64 << 10, KeepBytes: 16 << 10, Stdout: &stdout, Stderr: &stderr})
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("Run: %v %s", err, stderr.String())
	}
	if plainPathFor(portal) != filepath.Join(dir, "app.log") {
		t.Fatalf("plain path %s", plainPathFor(portal))
	}
	raw, _ := os.ReadFile(portal)
	plain, _ := os.ReadFile(filepath.Join(dir, "app.log"))
	for name, b := range map[string][]byte{"portal": raw, "plain": plain} {
		if len(b) > 64<<10 || len(b) == 0 {
			t.Fatalf("%s log is %d bytes", name, len(b))
		}
		if !bytes.HasSuffix(b, []byte(" 2999\r\n")) && !bytes.HasSuffix(b, []byte(" 2999\n")) {
			t.Fatalf("%s log lost the last line: %q", name, b[len(b)-20:])
		}
		// Cut at a line boundary: the first line is whole.
		first, _, _ := bytes.Cut(b, []byte("\n"))
		if !bytes.HasPrefix(first, []byte("\x1b[32mline")) && !bytes.HasPrefix(first, []byte("line ")) {
			t.Fatalf("%s log starts mid-line: %q", name, first)
		}
	}
	if !bytes.Contains(raw, []byte("\x1b[32m")) {
		t.Fatal("portal log lost its colours")
	}
	if bytes.ContainsAny(plain, "\x1b\r") || bytes.ContainsAny(stdout.Bytes(), "\x1b\r") {
		t.Fatal("plain outputs kept escapes")
	}
	if got := strings.Count(stdout.String(), "\n"); got != 3000 {
		t.Fatalf("stdout has %d lines, want 3000 (uncapped)", got)
	}
}

func TestRunReportsBadDestinationAndGoesOn(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := Run(strings.NewReader("hello\n"), Options{
		PortalPath: filepath.Join(blocker, "sub", "x.log"), // parent is a file
		PlainPath:  filepath.Join(dir, "plain.log"), Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil || stdout.String() != "hello\n" || !strings.Contains(stderr.String(), "x.log") {
		t.Fatalf("err=%v stdout=%q stderr=%q", err, stdout.String(), stderr.String())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "plain.log")); string(b) != "hello\n" {
		t.Fatalf("plain log %q", b)
	}
}
