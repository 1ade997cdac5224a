package vastauth

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RevokedFileName holds the revoked sessions under the state directory.
const RevokedFileName = "revoked_sessions.json"

// MaxRevoked bounds the revocation list. A session is revoked by logging
// out with it, so only someone holding a valid session can add to it; a
// thousand logouts within one session lifetime is far more than a person
// makes.
const MaxRevoked = 1024

// Revocations is the list of sessions logged out before their expiry. Each
// entry is kept until its session would have expired anyway. When the list
// is full, the entries expiring first are dropped and Floor rises to the
// latest expiry dropped: every session expiring at or before Floor counts
// as revoked, so dropping an entry never brings a session back (it may
// revoke a few older ones with it, which only costs a login).
//
// Lookups read an immutable snapshot (no lock on the request path);
// Revoke, which is rare, copies it.
type Revocations struct {
	path string // "" keeps the list in memory only
	mu   sync.Mutex
	snap atomic.Pointer[revocationSnapshot]
}

type revocationSnapshot struct {
	Floor    int64            `json:"floor,omitempty"`
	Sessions map[string]int64 `json:"sessions"` // session id → expiry (Unix seconds)
}

// ErrCorruptState is returned (wrapped) when a state file cannot be parsed.
var ErrCorruptState = errors.New("corrupt state file")

// loadRevocations reads the list kept in stateDir ("" for a list in memory
// only). A missing file is an empty list. A file that cannot be read as a
// list is reported with ErrCorruptState, and an empty list is returned
// with it: the caller must then make every existing session invalid some
// other way (vastauth rotates the session salt).
func loadRevocations(stateDir string) (*Revocations, error) {
	r := &Revocations{}
	empty := &revocationSnapshot{Sessions: map[string]int64{}}
	r.snap.Store(empty)
	if stateDir == "" {
		return r, nil
	}
	r.path = filepath.Join(stateDir, RevokedFileName)
	f, err := os.OpenFile(r.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("%s: %w (%w)", r.path, err, ErrCorruptState)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	var s revocationSnapshot
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		return r, fmt.Errorf("%s: %w (%w)", r.path, err, ErrCorruptState)
	}
	if s.Sessions == nil {
		s.Sessions = map[string]int64{}
	}
	r.snap.Store(&s)
	return r, nil
}

// Revoked reports whether the session id, expiring at exp, was revoked.
func (r *Revocations) Revoked(id string, exp int64) bool {
	s := r.snap.Load()
	if exp <= s.Floor {
		return true
	}
	_, ok := s.Sessions[id]
	return ok
}

// Len is the number of sessions listed.
func (r *Revocations) Len() int { return len(r.snap.Load().Sessions) }

// Revoke adds the session id, expiring at exp, as of now, and writes the
// list to its file (atomically: written aside, then renamed). The session
// is revoked in memory even when writing fails; the error says the
// revocation will not survive a restart. raised reports that the list was
// full and Floor rose.
func (r *Revocations) Revoke(id string, exp int64, now time.Time) (raised bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snap.Load()
	next := &revocationSnapshot{Floor: old.Floor, Sessions: make(map[string]int64, len(old.Sessions)+1)}
	for k, e := range old.Sessions {
		if e > now.Unix() && e > old.Floor { // expired entries are no longer needed
			next.Sessions[k] = e
		}
	}
	if exp > now.Unix() && exp > next.Floor {
		next.Sessions[id] = exp
	}
	if over := len(next.Sessions) - MaxRevoked; over > 0 {
		byExpiry := make([]string, 0, len(next.Sessions))
		for k := range next.Sessions {
			byExpiry = append(byExpiry, k)
		}
		sort.Slice(byExpiry, func(i, j int) bool { return next.Sessions[byExpiry[i]] < next.Sessions[byExpiry[j]] })
		for _, k := range byExpiry[:over] {
			next.Floor = max(next.Floor, next.Sessions[k])
			delete(next.Sessions, k)
		}
		for k, e := range next.Sessions { // entries now under the floor are redundant
			if e <= next.Floor {
				delete(next.Sessions, k)
			}
		}
		raised = true
	}
	r.snap.Store(next)
	if r.path == "" {
		return raised, nil
	}
	b, err := json.Marshal(next)
	if err != nil {
		return raised, err
	}
	tmp, err := writeAside(filepath.Dir(r.path), RevokedFileName, string(b))
	if err == nil {
		err = os.Rename(tmp, r.path)
		os.Remove(tmp)
	}
	if err != nil {
		return raised, fmt.Errorf("saving revoked sessions to %s: %w", r.path, err)
	}
	return raised, nil
}

// MaxHandoffsInFlight bounds the handoff tokens remembered as used. A token
// lives 60 s, so this allows one a tenth of a second, sustained, from
// logged-in pages.
const MaxHandoffsInFlight = 4096

// HandoffTTL is how long a handoff token is valid.
const HandoffTTL = 60 * time.Second

// HandoffLedger makes handoff tokens single-use: it remembers the nonce of
// every token redeemed until the token would have expired. It also holds a
// random epoch, mixed into every token's MAC, so tokens issued before the
// process started (and before the ledger existed) are never accepted: a
// restart cannot reopen a replay window.
type HandoffLedger struct {
	epoch [16]byte
	mu    sync.Mutex
	used  map[string]int64 // nonce → expiry (Unix seconds)
}

// NewHandoffLedger returns an empty ledger with a fresh epoch.
func NewHandoffLedger() (*HandoffLedger, error) {
	l := &HandoffLedger{used: map[string]int64{}}
	if _, err := rand.Read(l.epoch[:]); err != nil {
		return nil, fmt.Errorf("handoff epoch: %w", err)
	}
	return l, nil
}

// ErrHandoffLedgerFull is returned by use when too many tokens are in
// flight to remember another; the token is refused (fail closed).
var ErrHandoffLedgerFull = errors.New("too many handoff tokens in flight")

// use marks nonce (of a token expiring at exp) as used at now. It reports
// false if it was used before.
func (l *HandoffLedger) use(nonce string, exp int64, now time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, seen := l.used[nonce]; seen {
		return false, nil
	}
	if len(l.used) >= MaxHandoffsInFlight {
		for k, e := range l.used {
			if e <= now.Unix() {
				delete(l.used, k)
			}
		}
		if len(l.used) >= MaxHandoffsInFlight {
			return false, ErrHandoffLedgerFull
		}
	}
	l.used[nonce] = exp
	return true, nil
}

// Len is the number of nonces remembered.
func (l *HandoffLedger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.used)
}

// SessionStore is what sessions need from the state directory: the salt
// of the session key and the revoked sessions.
type SessionStore struct {
	Salt        []byte
	Revocations *Revocations
	// SaltReplaced: the revocation list could not be read, so the salt was
	// replaced (every session issued so far is now invalid, the revoked
	// ones included) and the unreadable list removed. Say so in the log.
	SaltReplaced error
}

// LoadSessionStore reads (or creates) the salt and the revoked sessions in
// stateDir. A revocation list that cannot be read cannot say which sessions
// were logged out; rather than accept them all again, it replaces the salt,
// which logs every session out.
func LoadSessionStore(stateDir string) (SessionStore, error) {
	return loadSessionStore(stateDir, true)
}

// CheckSessionStore is LoadSessionStore for `caddy validate`: it writes,
// replaces and removes nothing (a missing salt is made for this call only;
// an unreadable revocation list is left for the running portal to handle).
func CheckSessionStore(stateDir string) (SessionStore, error) {
	return loadSessionStore(stateDir, false)
}

func loadSessionStore(stateDir string, write bool) (SessionStore, error) {
	var st SessionStore
	salt, err := loadSalt(stateDir, write)
	if err != nil {
		return st, stateDirError(stateDir, err)
	}
	revs, err := loadRevocations(stateDir)
	if !write && errors.Is(err, ErrCorruptState) {
		revs, err = loadRevocations("") // empty, and never written
	}
	if errors.Is(err, ErrCorruptState) {
		if salt, err = replaceSalt(stateDir); err != nil {
			return st, stateDirError(stateDir, err)
		}
		if rmErr := os.Remove(filepath.Join(stateDir, RevokedFileName)); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			return st, stateDirError(stateDir, rmErr)
		}
		st.SaltReplaced = fmt.Errorf("%s could not be read, so every session was logged out (new session salt)", filepath.Join(stateDir, RevokedFileName))
		revs, err = loadRevocations(stateDir)
	}
	if err != nil {
		return st, stateDirError(stateDir, err)
	}
	st.Salt, st.Revocations = salt, revs
	return st, nil
}
