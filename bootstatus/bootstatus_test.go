package bootstatus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := Config{LockFile: filepath.Join(dir, "lock"), DoneFile: filepath.Join(dir, "done"), FailedFile: filepath.Join(dir, "failed")}
	touch := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if st := Read(c); st.Provisioning != None || st.Since != nil {
		t.Fatalf("no marker: %+v", st)
	}
	touch(c.DoneFile, "")
	if st := Read(c); st.Provisioning != Complete || st.Since == nil {
		t.Fatalf("done: %+v", st)
	}
	touch(c.FailedFile, "status=7\nmessage=provisioning failed (exit 7); startup continues\n")
	if st := Read(c); st.Provisioning != Failed || st.Code != "7" || st.Message != "provisioning failed (exit 7); startup continues" {
		t.Fatalf("failed: %+v", st)
	}
	// A retry under way wins over the earlier failure.
	touch(c.LockFile, "")
	if st := Read(c); st.Provisioning != Running {
		t.Fatalf("running: %+v", st)
	}
	// A directory where a marker should be is not a marker.
	dir2 := t.TempDir()
	if st := Read(Config{LockFile: dir2}); st.Provisioning != None {
		t.Fatalf("directory as marker: %+v", st)
	}
}

func TestParseFailedMasksAndBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, code, msg string }{
		{"status=download\nmessage=downloading PROVISIONING_SCRIPT https://bob:hunter2@example.com/p.sh?token=abc failed (404): not provisioning\n",
			"download", "downloading PROVISIONING_SCRIPT https://…@example.com/p.sh?… failed (404): not provisioning"},
		{"message=a\x1b[31mred\x00\nstatus=1\njunk line\n", "1", "a[31mred"},
		{"status=" + strings.Repeat("9", 100), strings.Repeat("9", 64) + "…", ""},
		{"message=" + strings.Repeat("é", 600), "", strings.Repeat("é", 512) + "…"},
		{"", "", ""},
	} {
		code, msg := parseFailed(strings.NewReader(tc.in))
		if code != tc.code || msg != tc.msg {
			t.Errorf("parseFailed(%.40q) = %q, %q; want %q, %q", tc.in, code, msg, tc.code, tc.msg)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := Default().Check(); err != nil {
		t.Fatal(err)
	}
	err := Config{LockFile: "rel/lock"}.Check()
	if err == nil || err.Error() != `lock_file: "rel/lock": want an absolute path` {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseFailed(f *testing.F) {
	f.Add("status=1\nmessage=x https://a:b@h/?q=1\n")
	f.Add("message=\xff\xfe\n")
	f.Fuzz(func(t *testing.T, in string) {
		code, msg := parseFailed(strings.NewReader(in))
		if len(code) > 64+len("…") || len(msg) > 1024+len("…") {
			t.Fatalf("unbounded: %d %d", len(code), len(msg))
		}
		if strings.Contains(msg, "?") && !strings.Contains(msg, "?…") {
			t.Fatalf("query string shown: %q", msg)
		}
		for _, r := range code + msg {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in %q %q", code, msg)
			}
		}
	})
}
