package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRealSupervisordUpdate: Update is reread + update over the socket:
// a program file added, changed and removed in an included directory is
// added (and started), replaced and dropped.
func TestRealSupervisordUpdate(t *testing.T) {
	dir := t.TempDir()
	sock := startSupervisord(t, "\n[include]\nfiles = "+dir+"/*.conf\n")
	s := newTestService(t, Config{Socket: sock})
	ctx := context.Background()
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Known(ctx, "added"); err != nil || ok {
		t.Fatalf("known before the file: %v %v", ok, err)
	}
	conf := filepath.Join(dir, "added.conf")
	write := func(cmd string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte("[program:added]\ncommand="+cmd+"\nstartsecs=0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`/bin/sh -c "exec sleep 300"`)
	ch, err := s.Update(ctx)
	if err != nil || !reflect.DeepEqual(ch.Added, []string{"added"}) || len(ch.Changed)+len(ch.Removed) != 0 {
		t.Fatalf("add: %+v %v", ch, err)
	}
	waitState(t, s, "added", "RUNNING")
	write(`/bin/sh -c "exec sleep 301"`)
	if ch, err = s.Update(ctx); err != nil || !reflect.DeepEqual(ch.Changed, []string{"added"}) {
		t.Fatalf("change: %+v %v", ch, err)
	}
	waitState(t, s, "added", "RUNNING")
	os.Remove(conf)
	if ch, err = s.Update(ctx); err != nil || !reflect.DeepEqual(ch.Removed, []string{"added"}) {
		t.Fatalf("remove: %+v %v", ch, err)
	}
	if ok, err := s.Known(ctx, "added"); err != nil || ok {
		t.Errorf("known after removal: %v %v", ok, err)
	}
	if ch, err = s.Update(ctx); err != nil || len(ch.Added)+len(ch.Changed)+len(ch.Removed) != 0 {
		t.Errorf("nothing to do: %+v %v", ch, err)
	}
}
