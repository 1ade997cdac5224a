package integration_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestImageSyncHome: an instance boots with --sync-home and a directory
// mounted as the volume. /root and /home/user are copied once to
// ${WORKSPACE}/home/{root,user} (the reference's layout, `user`'s files
// still its own) and linked back; each .ssh stays in the container under
// /home_ssh and is linked into the home on the volume, and root's SSH keys
// still reach `user`. A file `user` writes in ~ is on the volume; the next
// instance (a fresh container of the image on the same volume) does not
// copy again, sees that file in ~user, and has its own SSH keys, not the
// first one's.
func TestImageSyncHome(t *testing.T) {
	a := newImageRoot(t)
	volume := t.TempDir()
	a.syncTestVars(t)
	const keyA, keyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA instance-a", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB instance-b"
	rootKeys := func(ir *imageRoot, key string) {
		mustMkdir(t, ir.at("root/.ssh"))
		mustWrite(t, ir.at("root/.ssh/authorized_keys"), key+"\n", 0o600)
	}
	rootKeys(a, keyA)
	const synced = "--sync-home: /root and /home/* are on the volume"
	const copying = "--sync-home: copying the home directories"
	ba := a.boot(t, volume, "", "--sync-home")
	waitFor(t, 180*time.Second, "the homes on the volume, then caddy", func() bool {
		o := ba.proc.Out.String()
		return strings.Contains(o, synced) && strings.Contains(o, "Starting Caddy")
	})
	if n := strings.Count(ba.proc.Out.String(), copying); n != 1 {
		t.Errorf("the first instance copied the homes %d times, want 1", n)
	}
	home := filepath.Join(volume, "home")
	if _, err := os.Stat(filepath.Join(home, ".synced")); err != nil {
		t.Errorf(".synced: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, ".syncing")); !os.IsNotExist(err) {
		t.Errorf(".syncing left: %v", err)
	}
	owner := func(p string) int {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return int(fi.Sys().(*syscall.Stat_t).Uid)
	}
	if !isDir(filepath.Join(home, "root")) || !isDir(filepath.Join(home, "user")) {
		t.Fatalf("the volume's home/ lacks root/ or user/")
	}
	if u := owner(filepath.Join(home, "user")); u != 1001 {
		t.Errorf("home/user on the volume is owned by uid %d, want user's 1001", u)
	}
	links := map[string]string{
		"/root":           "/workspace/home/root",
		"/home/user":      "/workspace/home/user",
		"/root/.ssh":      "/home_ssh/root/.ssh",
		"/home/user/.ssh": "/home_ssh/user/.ssh",
	}
	for p, want := range links {
		if got := strings.TrimSpace(ba.mustInside("readlink", p)); got != want {
			t.Errorf("%s → %q, want %q", p, got, want)
		}
	}
	if u := owner(a.at("home_ssh/user/.ssh")); u != 1001 {
		t.Errorf("/home_ssh/user/.ssh is owned by uid %d, want user's 1001", u)
	}
	// The keys are the instance's: on the volume only a link.
	for _, p := range []string{"root/.ssh", "user/.ssh"} {
		if fi, err := os.Lstat(filepath.Join(home, p)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("home/%s on the volume is not a link: %v %v", p, fi, err)
		}
	}
	if got := ba.mustInside("cat", "/home/user/.ssh/authorized_keys"); !strings.Contains(got, keyA) {
		t.Errorf("root's key did not reach user: %q", got)
	}
	ba.mustInside("env", "HOME=/home/user", "setpriv", "--reuid=user", "--regid=0", "--init-groups",
		"/bin/sh", "-c", "echo kept > ~/persisted")
	if u := owner(filepath.Join(home, "user/persisted")); u != 1001 {
		t.Errorf("~user/persisted on the volume is owned by uid %d", u)
	}
	ba.stop()

	// The next instance: a fresh container of the image, the same volume.
	b := newImageRoot(t)
	b.syncTestVars(t)
	rootKeys(b, keyB)
	bb := b.boot(t, volume, "", "--sync-home")
	waitFor(t, 180*time.Second, "the homes from the volume, then caddy", func() bool {
		o := bb.proc.Out.String()
		return strings.Contains(o, synced) && strings.Contains(o, "Starting Caddy")
	})
	if strings.Contains(bb.proc.Out.String(), copying) {
		t.Error("the second instance copied the homes again")
	}
	if got := strings.TrimSpace(bb.mustInside("cat", "/home/user/persisted")); got != "kept" {
		t.Errorf("~user/persisted in the next instance: %q", got)
	}
	keys := bb.mustInside("cat", "/home/user/.ssh/authorized_keys")
	if !strings.Contains(keys, keyB) || strings.Contains(keys, keyA) {
		t.Errorf("the next instance's user keys: %q, want its own only", keys)
	}
	bb.stop()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
