package vastauth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSaltFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s1, err := loadOrCreateSalt(dir)
	if err != nil || len(s1) != 43 {
		t.Fatalf("loadOrCreateSalt = %q, %v", s1, err)
	}
	if st, err := os.Stat(filepath.Join(dir, SaltFileName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("salt file: %v, %v", st, err)
	}
	s2, err := loadOrCreateSalt(dir)
	if err != nil || string(s2) != string(s1) {
		t.Errorf("salt changed across loads: %q → %q (%v)", s1, s2, err)
	}
	s3, err := replaceSalt(dir)
	if err != nil || string(s3) == string(s1) {
		t.Fatalf("replaceSalt = %q, %v", s3, err)
	}
	if s4, _ := loadOrCreateSalt(dir); string(s4) != string(s3) {
		t.Errorf("the replaced salt was not kept")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only the salt file", len(entries))
	}
}

func TestRevocationsBoundedAndNeverForgetting(t *testing.T) {
	dir := t.TempDir()
	r, err := loadRevocations(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	// Sessions expiring one second apart; each is logged out.
	exp := func(i int) int64 { return now.Unix() + 1000 + int64(i) }
	raisedAt := -1
	for i := range MaxRevoked + 10 {
		raised, err := r.Revoke(fmt.Sprintf("id-%06d", i), exp(i), now)
		if err != nil {
			t.Fatal(err)
		}
		if raised && raisedAt < 0 {
			raisedAt = i
		}
		if r.Len() > MaxRevoked {
			t.Fatalf("%d entries, bound %d", r.Len(), MaxRevoked)
		}
	}
	if raisedAt != MaxRevoked {
		t.Errorf("floor first raised at entry %d, want %d", raisedAt, MaxRevoked)
	}
	// Dropping entries never brings a revoked session back.
	for i := range MaxRevoked + 10 {
		if !r.Revoked(fmt.Sprintf("id-%06d", i), exp(i)) {
			t.Fatalf("session %d is no longer revoked", i)
		}
	}
	if r.Revoked("id-new", exp(MaxRevoked+100)) {
		t.Error("a session expiring after the floor counts as revoked")
	}
	// Expired entries leave the list at the next revocation.
	later := now.Add(time.Duration(1000+MaxRevoked) * time.Second)
	if _, err := r.Revoke("late", later.Unix()+10, later); err != nil {
		t.Fatal(err)
	}
	if r.Len() > 11 {
		t.Errorf("%d entries after most expired", r.Len())
	}
	// The file holds the same list.
	back, err := loadRevocations(dir)
	if err != nil || back.Len() != r.Len() || !back.Revoked("late", later.Unix()+10) {
		t.Errorf("reloaded: %d entries, %v", back.Len(), err)
	}
	if st, _ := os.Stat(filepath.Join(dir, RevokedFileName)); st.Mode().Perm() != 0o600 {
		t.Errorf("revocation file mode %v", st.Mode().Perm())
	}
}

func TestRevocationsCorruptFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, RevokedFileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := loadRevocations(dir)
	if !errors.Is(err, ErrCorruptState) || r == nil || r.Len() != 0 {
		t.Errorf("corrupt file: %v, %v", r, err)
	}
	// In memory only: nothing is written.
	m, err := loadRevocations("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Revoke("a", t0.Unix()+5, t0); err != nil || !m.Revoked("a", t0.Unix()+5) {
		t.Errorf("in-memory revoke: %v", err)
	}
}

func TestHandoffLedger(t *testing.T) {
	l, err := NewHandoffLedger()
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(HandoffTTL).Unix()
	if ok, err := l.use("n1", exp, t0); !ok || err != nil {
		t.Fatalf("first use: %v, %v", ok, err)
	}
	if ok, _ := l.use("n1", exp, t0); ok {
		t.Fatal("second use accepted")
	}
	for i := range MaxHandoffsInFlight - 1 {
		if ok, err := l.use(fmt.Sprint(i), exp, t0); !ok || err != nil {
			t.Fatalf("use %d: %v, %v", i, ok, err)
		}
	}
	// Full of unexpired tokens: refuse rather than forget one.
	if ok, err := l.use("one-more", exp, t0); ok || !errors.Is(err, ErrHandoffLedgerFull) {
		t.Fatalf("over the bound: %v, %v", ok, err)
	}
	// Once they expired, room is made.
	if ok, err := l.use("one-more", exp+60, t0.Add(2*HandoffTTL)); !ok || err != nil {
		t.Fatalf("after expiry: %v, %v", ok, err)
	}
	if l.Len() != 1 {
		t.Errorf("%d remembered after the sweep", l.Len())
	}
}

// A revocation list that cannot be read must not bring logged-out sessions
// back: the salt is replaced instead, which logs every session out.
func TestLoadSessionStoreRotatesSaltOnCorruptList(t *testing.T) {
	dir := t.TempDir()
	st, err := LoadSessionStore(dir)
	if err != nil || st.SaltReplaced != nil {
		t.Fatalf("fresh state: %+v, %v", st, err)
	}
	a, _ := New(Params{Secrets: []string{testToken}, Salt: st.Salt, Revocations: st.Revocations})
	revoked, live := a.IssueSession(t0), a.IssueSession(t0)
	if _, _, err := a.Revoke(revoked, t0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, RevokedFileName), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	st2, err := LoadSessionStore(dir)
	if err != nil || st2.SaltReplaced == nil || !strings.Contains(st2.SaltReplaced.Error(), RevokedFileName) {
		t.Fatalf("corrupt list: %+v, %v", st2, err)
	}
	b, _ := New(Params{Secrets: []string{testToken}, Salt: st2.Salt, Revocations: st2.Revocations})
	for _, v := range []string{revoked, live} {
		if s := b.VerifySession(v, t0); s != SessionInvalid {
			t.Errorf("after the salt was replaced a session is in state %d", s)
		}
	}
	// The unreadable list is gone, so the next start does not log out again.
	st3, err := LoadSessionStore(dir)
	if err != nil || st3.SaltReplaced != nil || string(st3.Salt) != string(st2.Salt) {
		t.Errorf("next start: %+v, %v", st3, err)
	}
}

// TestCheckWritesNothing: what `caddy validate` calls (CheckSecrets,
// CheckSessionStore) creates no state directory and no file, and still reads
// an existing token; ResolveSecrets and LoadSessionStore create them.
func TestCheckWritesNothing(t *testing.T) {
	none := func(string) string { return "" }
	dir := filepath.Join(t.TempDir(), "state")
	r, err := SecretSource{StateDir: dir}.CheckSecrets(none)
	if err != nil || len(r.Values) != 1 || r.Values[0] == "" || r.Generated {
		t.Fatalf("CheckSecrets: %+v %v", r, err)
	}
	if _, err := CheckSessionStore(dir); err != nil {
		t.Fatalf("CheckSessionStore: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("state directory after the checks: %v, want it absent", err)
	}
	written, err := SecretSource{StateDir: dir}.ResolveSecrets(none)
	if err != nil || !written.Generated {
		t.Fatalf("ResolveSecrets: %+v %v", written, err)
	}
	if _, err := LoadSessionStore(dir); err != nil {
		t.Fatal(err)
	}
	// A corrupt revocation list is left alone by the check (the running
	// portal replaces the salt and removes it).
	revoked := filepath.Join(dir, RevokedFileName)
	if err := os.WriteFile(revoked, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	salt, _ := os.ReadFile(filepath.Join(dir, SaltFileName))
	if _, err := CheckSessionStore(dir); err != nil {
		t.Fatalf("CheckSessionStore with a corrupt list: %v", err)
	}
	if b, _ := os.ReadFile(revoked); string(b) != "{not json" {
		t.Errorf("the check changed %s: %q", revoked, b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, SaltFileName)); string(b) != string(salt) {
		t.Errorf("the check replaced the salt")
	}
	again, err := SecretSource{StateDir: dir}.CheckSecrets(none)
	if err != nil || len(again.Values) != 1 || again.Values[0] != written.Values[0] {
		t.Errorf("CheckSecrets with a token file: %+v %v, want the file's token", again, err)
	}
}
