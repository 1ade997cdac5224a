package portallinks

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

// maxFileBytes bounds the links file: a hundred cards fit in a few KiB.
const maxFileBytes = 1 << 20

// statInterval is how often the file is checked for a change: often enough
// that an edit shows on the next poll of the page, rarely enough that a
// busy page costs nothing.
const statInterval = time.Second

// Loader serves the cards, re-reading the file when its modification time,
// size or identity changes. It is safe for concurrent use.
type Loader struct {
	cfg  Config
	warn func(string)
	now  func() time.Time

	inlineCards []Card
	inlineWarns []string

	mu        sync.Mutex
	checkedAt time.Time
	haveKey   bool
	key       fileKey
	fileCards []Card
	fileWarns []string
	logged    map[string]bool
}

// fileKey identifies one version of the file.
type fileKey struct {
	exists bool
	size   int64
	mtime  time.Time
	dev    uint64
	ino    uint64
}

// NewLoader checks cfg and returns a loader. warn is called once for each
// warning when it first appears (the caller logs it); nil ignores them.
func NewLoader(cfg Config, warn func(string)) (*Loader, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if warn == nil {
		warn = func(string) {}
	}
	confdecl.FillDefaults(&cfg, Default())
	l := &Loader{cfg: cfg, warn: warn, now: time.Now, logged: map[string]bool{}}
	l.inlineCards, l.inlineWarns = parseInline(cfg.Inline)
	return l, nil
}

// Cards returns every card in page order — the file's "before" entries,
// the built-in cards, the file's "after" entries, then PORTAL_LINKS — and
// the warnings about what was left out. origin is the page's origin (see
// Builtin).
func (l *Loader) Cards(origin string) (cards []Card, warnings []string) {
	fileCards, fileWarns := l.refresh()
	builtin := Builtin(l.cfg, origin)
	cards = make([]Card, 0, len(fileCards)+len(builtin)+len(l.inlineCards))
	for _, c := range fileCards {
		if c.Position == "before" {
			cards = append(cards, c)
		}
	}
	cards = append(cards, builtin...)
	for _, c := range fileCards {
		if c.Position != "before" {
			cards = append(cards, c)
		}
	}
	cards = append(cards, l.inlineCards...)
	warnings = make([]string, 0, len(fileWarns)+len(l.inlineWarns))
	warnings = append(append(warnings, fileWarns...), l.inlineWarns...)
	return cards, warnings
}

// refresh re-reads the file if it changed, logs new warnings, and returns
// the file's cards and all current warnings.
func (l *Loader) refresh() ([]Card, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.haveKey && now.Sub(l.checkedAt) < statInterval && now.After(l.checkedAt) {
		return l.fileCards, l.fileWarns
	}
	l.checkedAt = now
	key, err := statKey(l.cfg.File)
	if l.haveKey && err == nil && key == l.key {
		return l.fileCards, l.fileWarns
	}
	l.key, l.haveKey = key, err == nil
	l.fileCards, l.fileWarns = l.load(err)
	// Log each warning once, when it appears; one that goes away and comes
	// back is logged again.
	current := map[string]bool{}
	for _, w := range append(append([]string(nil), l.fileWarns...), l.inlineWarns...) {
		if !l.logged[w] {
			l.warn(w)
		}
		current[w] = true
	}
	l.logged = current
	return l.fileCards, l.fileWarns
}

func (l *Loader) load(statErr error) ([]Card, []string) {
	path := l.cfg.File
	if statErr != nil {
		return nil, []string{fmt.Sprintf("%s: %v; file skipped", path, statErr)}
	}
	if !l.key.exists {
		if path == DefaultFile {
			return nil, nil // a template without links
		}
		return nil, []string{path + ": no such file; file skipped"}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v; file skipped", path, unwrapPath(err))}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v; file skipped", path, unwrapPath(err))}
	}
	if len(data) > maxFileBytes {
		return nil, []string{fmt.Sprintf("%s: larger than %d bytes; file skipped", path, maxFileBytes)}
	}
	return parseFile(data, path)
}

// statKey describes the file's current version; a missing file is a
// version too (exists false).
func statKey(path string) (fileKey, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileKey{}, nil
	}
	if err != nil {
		return fileKey{}, unwrapPath(err)
	}
	if !fi.Mode().IsRegular() {
		return fileKey{}, errors.New("not a regular file")
	}
	k := fileKey{exists: true, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = uint64(st.Dev), st.Ino
	}
	return k, nil
}

// unwrapPath drops the path from an fs.PathError: the warning names the
// file already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
