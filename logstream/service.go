// Package logstream follows the *.log files of one directory and streams
// them, rendered from terminal output to HTML, to any number of clients.
//
// One Service per directory: a watcher (inotify through fsnotify, polling
// where inotify is unavailable) and one tailer per followed file whatever
// the number of clients, each keeping a ring of the last lines for late
// joiners. Everything a stranger can grow is bounded: the files followed
// (the most recently written, Config.MaxFiles), ring memory per file and
// across files, how far a tailer may fall behind, each client's queue (in
// bytes) and snapshot. A hub fans each event out, encoded once, to the
// clients' queues; a client that falls behind is resynchronised from one
// snapshot, never waited for. The HTTP side (files, WebSocket, SSE,
// downloads) is in http.go. Nothing here imports Caddy;
// caddymodules/logstream.go wires it in.
package logstream

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// quietBeforeEvict is how long the least recently written followed file
// must have been quiet before a write to an unfollowed file takes its
// place: with more busy files than MaxFiles, files would otherwise be
// swapped (and re-read) on every write.
const quietBeforeEvict = 10 * time.Second

// Service follows one directory. It starts on first use (so `caddy
// validate`, which provisions handlers, starts nothing) and stops on Close.
type Service struct {
	cfg Config // defaults filled in
	// streams counts the clients streaming from this Service (all
	// handlers, across config reloads); see Handler.admit.
	streams atomic.Int64
	dir     string
	// log is given once; a Service shared across config reloads should be
	// given a logger that follows the newest config (caddymodules'
	// configLoggers), since an old config's sinks close with it.
	log *zap.Logger

	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup

	hub       hub
	ringBytes atomic.Int64 // all rings together
	trimMu    sync.Mutex
	// trimAsked is set by every caller that finds the budget exceeded, so
	// that a pass already running does another one rather than missing
	// bytes a skipped caller added behind it.
	trimAsked atomic.Bool

	mu      sync.Mutex
	tailers map[string]*tailer
	polling bool
	quiet   time.Duration // quietBeforeEvict; tests shorten it
}

// NewService prepares a Service for cfg.Dir (defaults filled in for zero
// fields); nothing runs until first use. cfg should have passed Validate.
func NewService(cfg Config, log *zap.Logger) *Service {
	cfg = cfg.filled()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, dir: filepath.Clean(cfg.Dir),
		ctx: ctx, cancel: cancel, tailers: map[string]*tailer{}, quiet: quietBeforeEvict,
	}
	if log == nil {
		log = zap.NewNop()
	}
	s.log = log
	return s
}

func (s *Service) logger() *zap.Logger { return s.log }

// Dir is the directory followed.
func (s *Service) Dir() string { return s.dir }

// Close stops the watcher and every tailer and waits for them.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Destruct lets a Service live in a caddy.UsagePool.
func (s *Service) Destruct() error { return s.Close() }

// Polling reports whether the Service runs without inotify.
func (s *Service) Polling() bool {
	s.start()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polling
}

func (s *Service) start() {
	s.once.Do(func() {
		if s.ctx.Err() != nil {
			return
		}
		w := s.newWatcher()
		s.scan(true)
		s.wg.Add(1)
		go s.watch(w)
	})
}

// newWatcher sets up inotify on the directory, or returns nil (polling).
func (s *Service) newWatcher() *fsnotify.Watcher {
	if s.cfg.ForcePolling {
		s.polling = true
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(s.dir)
		if err != nil {
			_ = w.Close()
		}
	}
	if err != nil {
		s.logger().Warn("log directory not watched with inotify; polling instead",
			zap.String("dir", s.dir), zap.Duration("interval", s.cfg.PollInterval.Std()), zap.Error(err))
		s.polling = true
		return nil
	}
	return w
}

// watch dispatches inotify events to tailers, or rescans when polling.
func (s *Service) watch(w *fsnotify.Watcher) {
	defer s.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			s.logger().Error("log watcher panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		}
	}()
	if w == nil {
		tick := time.NewTicker(s.cfg.PollInterval.Std() * 4)
		defer tick.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-tick.C:
				s.scan(false)
			}
		}
	}
	defer w.Close()
	for {
		select {
		case <-s.ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			name := filepath.Base(ev.Name)
			if ValidateName(name) != nil {
				continue
			}
			if t := s.tailer(name); t != nil {
				// Remove and rename too: the tailer sees the path gone and
				// closes the file at once.
				t.poke()
				continue
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) {
				s.follow(name, byWrite)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			// Queue overflow: events were lost; look at everything again.
			s.logger().Debug("log watcher error; rescanning", zap.Error(err))
			s.scan(false)
		}
	}
}

type candidate struct {
	name  string
	mtime time.Time
}

// scan follows the most recently written files, up to MaxFiles, and pokes
// the followed ones. At start-up files are read from near their end
// before scan returns; files found later are new, and read whole.
func (s *Service) scan(atStart bool) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	var cands []candidate
	for _, fi := range logInfos(entries) {
		cands = append(cands, candidate{fi.Name(), fi.ModTime()})
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].mtime.After(cands[j].mtime) })
	cands = cands[:min(len(cands), s.cfg.MaxFiles)]
	how := byWrite
	if atStart {
		how = atStartUp
	}
	for _, c := range cands {
		if t := s.follow(c.name, how); t != nil && !atStart {
			t.poke()
		}
	}
}

type followReason int

const (
	atStartUp followReason = iota // existing file at start: read its end, synchronously
	byWrite                       // a file written or created: follow if there is room
	byName                        // a client asked for it: always follow
)

// follow returns the tailer of name, starting one if the bound allows:
// under MaxFiles files, or by taking the place of the least recently
// written one (at once when a client asked for the file; after it has been
// quiet for quietBeforeEvict when another file was written). It returns
// nil when the file is not followed.
func (s *Service) follow(name string, why followReason) *tailer {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return nil
	}
	if t := s.tailers[name]; t != nil {
		s.mu.Unlock()
		return t
	}
	if len(s.tailers) >= s.cfg.MaxFiles {
		lru := s.leastRecentlyWrittenLocked()
		if lru == nil || why == atStartUp || (why == byWrite && time.Since(lru.lastWrite()) < s.quiet) {
			s.mu.Unlock()
			return nil
		}
		delete(s.tailers, lru.name)
		lru.stopFollowing()
		s.logger().Debug("log file no longer followed: more files than max_files",
			zap.String("file", lru.name), zap.String("instead", name), zap.Int("max_files", s.cfg.MaxFiles))
	}
	t := newTailer(s, name, why != byWrite)
	s.tailers[name] = t
	poll := s.cfg.PollInterval.Std()
	if !s.polling {
		poll *= 8
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.logger().Debug("following log file", zap.String("file", name))
	// At start-up and for a client that named the file, read its end
	// before returning, so that the snapshot holds the recent lines.
	if why != byWrite && t.step() {
		s.forget(t)
		t.closeFile()
		s.wg.Done()
		return nil
	}
	go func() {
		defer s.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				s.logger().Error("log tailer panicked", zap.String("file", name), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				s.forget(t)
				t.closeFile()
			}
		}()
		t.run(s.ctx.Done(), poll)
	}()
	return t
}

func (s *Service) leastRecentlyWrittenLocked() *tailer {
	var lru *tailer
	for _, t := range s.tailers {
		if lru == nil || t.lastWrite().Before(lru.lastWrite()) {
			lru = t
		}
	}
	return lru
}

// forget drops a tailer whose file is gone.
func (s *Service) forget(t *tailer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tailers[t.name] == t {
		delete(s.tailers, t.name)
	}
}

// refollow follows name again if a file of that name exists after its
// tailer found the path gone and was forgotten: a file created in between
// (rename away, recreate) had its inotify events delivered to the tailer
// that was leaving, and no later event may come. An event after forget
// follows the file by itself; follow is idempotent either way.
func (s *Service) refollow(name string) {
	if st, err := os.Lstat(filepath.Join(s.dir, name)); err != nil || !servable(st) {
		return
	}
	if t := s.follow(name, byWrite); t != nil {
		t.poke()
	}
}

func (s *Service) tailer(name string) *tailer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tailers[name]
}

// initialBytes is how much of an existing file is read when following it
// starts: catch_up_bytes, or less when the ring budget shared by all the
// files followed could not keep that much anyway.
func (s *Service) initialBytes() int64 {
	s.mu.Lock()
	n := max(1, len(s.tailers))
	s.mu.Unlock()
	return int64(max(4096, min(s.cfg.CatchUpBytes, s.cfg.TotalRingBytes/n)))
}

// addRingBytes is every ring's byte counter (ring.onBytes).
func (s *Service) addRingBytes(delta int) { s.ringBytes.Add(int64(delta)) }

// enforceRingBudget trims the rings once all of them together hold more
// than TotalRingBytes: each ring above its fair share (the budget divided
// by the files followed) keeps its newest lines, 90% of that share, so
// that the next few lines do not trigger another pass at once. One pass at
// a time; a caller that finds one running leaves trimAsked set and the
// runner passes again. The caller holds no tailer lock.
func (s *Service) enforceRingBudget() {
	for s.ringBytes.Load() > int64(s.cfg.TotalRingBytes) {
		s.trimAsked.Store(true)
		if !s.trimMu.TryLock() {
			return // the runner sees trimAsked
		}
		for s.trimAsked.Swap(false) {
			s.trimPass()
		}
		s.trimMu.Unlock()
		// A caller that asked between the last Swap and Unlock found the
		// lock held: the loop condition re-checks for it.
		if !s.trimAsked.Load() {
			return
		}
	}
}

func (s *Service) trimPass() {
	s.mu.Lock()
	ts := make([]*tailer, 0, len(s.tailers))
	for _, t := range s.tailers {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	share := s.cfg.TotalRingBytes / max(1, len(ts))
	for _, t := range ts {
		t.mu.Lock()
		if t.ring.bytes > share {
			t.ring.trimTo(share * 9 / 10)
		}
		t.mu.Unlock()
	}
}

// RingBytes is what the rings of all files hold (for tests and metrics).
func (s *Service) RingBytes() int64 { return s.ringBytes.Load() }

// FileInfo describes one log file.
type FileInfo struct {
	Name  string    `json:"name"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	// Followed says whether the file is followed now (streamed live, its
	// last lines kept); at most max_files are, the most recently written.
	Followed bool `json:"followed"`
}

// logInfos keeps the regular files with a log file's name (ValidateName)
// among a directory's entries, with their details.
func logInfos(entries []os.DirEntry) []fs.FileInfo {
	var out []fs.FileInfo
	for _, e := range entries {
		if !e.Type().IsRegular() || ValidateName(e.Name()) != nil {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out = append(out, fi)
		}
	}
	return out
}

// Files lists the *.log regular files of the directory, by name.
func (s *Service) Files() ([]FileInfo, error) {
	s.start()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return []FileInfo{}, nil
		}
		return nil, fmt.Errorf("listing log directory %s: %w", s.dir, err)
	}
	out := []FileInfo{}
	for _, fi := range logInfos(entries) {
		out = append(out, FileInfo{Name: fi.Name(), Size: fi.Size(), MTime: fi.ModTime().UTC()})
	}
	s.mu.Lock()
	for i := range out {
		out[i].Followed = s.tailers[out[i].Name] != nil
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// CheckFile validates name and that it is a regular file of the directory.
// Its errors say what is wrong with the name, for the client (400 body).
func (s *Service) CheckFile(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nameErr(name, "cannot be read: the log directory is unavailable")
	}
	defer root.Close()
	fi, err := root.Lstat(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nameErr(name, "does not exist")
	case err != nil:
		return nameErr(name, "cannot be read")
	case !fi.Mode().IsRegular():
		return nameErr(name, "is not a regular file")
	case !servable(fi):
		return nameErr(name, "has other hard links (it may be a file from outside the log directory)")
	}
	return nil
}

// Subscribers is the number of open streams (for tests and metrics).
func (s *Service) Subscribers() int { return s.hub.count() }

// Followed lists the files with a running tailer.
func (s *Service) Followed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.tailers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
