package provstatus

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	p := Path(dir)
	if _, err := Read(p); !errors.Is(err, ErrNone) {
		t.Fatalf("empty dir: %v", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	in := Status{State: Running, StartedAt: now, UpdatedAt: now,
		Phases:    []Phase{{Name: "downloads", State: Running, StartedAt: &now}},
		Downloads: []Download{{ID: "1", Kind: "url", Source: "http://h/x", Dest: "/d/x", State: Running, Bytes: 5, Total: 10, ETASeconds: -1}}}
	if err := Write(p, in); err != nil {
		t.Fatal(err)
	}
	out, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if out.State != Running || len(out.Downloads) != 1 || out.Downloads[0].Bytes != 5 || !out.Phases[0].StartedAt.Equal(now) {
		t.Errorf("round trip: %+v", out)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode: %v %v", fi, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".progress-*")); len(m) != 0 {
		t.Errorf("temp files left: %v", m)
	}
	if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); err == nil {
		t.Error("a broken file must be an error")
	}
	if Path("") != "/.provisioner_state/progress.json" {
		t.Error(Path(""))
	}
}
