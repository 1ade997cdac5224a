// Package logstream follows the *.log files of one directory and streams
// them, rendered from terminal output to HTML, to any number of clients.
//
// One Service per directory: a watcher (inotify through fsnotify, polling
// where inotify is unavailable) and one tailer per file whatever the number
// of clients, each keeping a ring of the last lines for late joiners. A hub
// fans events out to bounded per-client queues; a client that falls behind
// is resynchronised from snapshots, never waited for. The HTTP side
// (files, WebSocket, SSE, download) is in http.go. Nothing here imports
// Caddy; caddymodules/logstream.go wires it in.
package logstream

import (
	"context"
	"errors"
	"fmt"
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

// Options tune a Service. Zero values take the defaults.
type Options struct {
	// RingLines is how many final lines each file keeps for late joiners.
	RingLines int
	// RingBytes bounds the memory of one file's ring.
	RingBytes int
	// BlockLines is the terminal window height used once a file redraws
	// earlier lines (nested progress bars).
	BlockLines int
	// MaxLineBytes caps one line; the rest is dropped with a marker.
	MaxLineBytes int
	// InitialBytes is how much of an existing file is read at start.
	InitialBytes int64
	// PollInterval drives tailers and the directory scan when inotify is
	// unavailable; with inotify it is a slow safety net (×8).
	PollInterval time.Duration
	// ForcePolling skips inotify (tests, odd filesystems).
	ForcePolling bool
}

// Defaults.
const (
	DefaultRingLines    = 2000
	DefaultRingBytes    = 4 << 20
	DefaultInitialBytes = 1 << 20
	DefaultPollInterval = 250 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.RingLines <= 0 {
		o.RingLines = DefaultRingLines
	}
	if o.RingBytes <= 0 {
		o.RingBytes = DefaultRingBytes
	}
	if o.BlockLines < 2 {
		o.BlockLines = DefaultBlockLines
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.InitialBytes <= 0 {
		o.InitialBytes = DefaultInitialBytes
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	return o
}

// Service follows one directory. It starts on first use (so `caddy
// validate`, which provisions handlers, starts nothing) and stops on Close.
type Service struct {
	dir  string
	opts Options
	log  *zap.Logger

	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup

	rev atomic.Uint64
	hub hub

	mu      sync.Mutex
	tailers map[string]*tailer
	polling bool
}

// NewService prepares a Service for dir; nothing runs until first use.
func NewService(dir string, opts Options, log *zap.Logger) *Service {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		dir: filepath.Clean(dir), opts: opts.withDefaults(), log: log,
		ctx: ctx, cancel: cancel, tailers: map[string]*tailer{},
	}
}

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
		s.scan(false)
		s.wg.Add(1)
		go s.watch(w)
	})
}

// newWatcher sets up inotify on the directory, or returns nil (polling).
func (s *Service) newWatcher() *fsnotify.Watcher {
	if s.opts.ForcePolling {
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
		s.log.Warn("log directory not watched with inotify; polling instead",
			zap.String("dir", s.dir), zap.Duration("interval", s.opts.PollInterval), zap.Error(err))
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
			s.log.Error("log watcher panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		}
	}()
	if w == nil {
		tick := time.NewTicker(s.opts.PollInterval * 4)
		defer tick.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-tick.C:
				s.scan(true)
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
			if ev.Has(fsnotify.Create) {
				s.ensure(name, false)
				continue
			}
			s.mu.Lock()
			t := s.tailers[name]
			s.mu.Unlock()
			if t != nil {
				t.poke()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			// Queue overflow: events were lost; look at everything again.
			s.log.Debug("log watcher error; rescanning", zap.Error(err))
			s.scan(true)
		}
	}
}

// scan starts tailers for files not followed yet and pokes the others.
// At start-up files are read from near their end; files found later are
// new, and read whole.
func (s *Service) scan(poke bool) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || ValidateName(e.Name()) != nil {
			continue
		}
		if t := s.ensure(e.Name(), !poke); t != nil && poke {
			t.poke()
		}
	}
}

// ensure returns the tailer of name, starting one if needed. A tailer
// found at start-up reads its file's end before ensure returns, so that the
// first client's snapshot already holds the recent lines.
func (s *Service) ensure(name string, atStart bool) *tailer {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return nil
	}
	if t := s.tailers[name]; t != nil {
		s.mu.Unlock()
		t.poke()
		return t
	}
	t := newTailer(s, name, atStart)
	s.tailers[name] = t
	poll := s.opts.PollInterval
	if !s.polling {
		poll *= 8
	}
	s.wg.Add(1)
	s.mu.Unlock()
	if atStart && t.step() {
		s.forget(t)
		s.wg.Done()
		return nil
	}
	go func() {
		defer s.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("log tailer panicked", zap.String("file", name), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				s.forget(t)
			}
		}()
		t.run(s.ctx.Done(), poll)
	}()
	return t
}

// forget drops a tailer whose file is gone.
func (s *Service) forget(t *tailer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tailers[t.name] == t {
		delete(s.tailers, t.name)
	}
}

func (s *Service) tailer(name string) *tailer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tailers[name]
}

// FileInfo describes one log file.
type FileInfo struct {
	Name  string    `json:"name"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
}

// Files lists the *.log regular files of the directory, by name.
func (s *Service) Files() ([]FileInfo, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return []FileInfo{}, nil
		}
		return nil, fmt.Errorf("listing log directory %s: %w", s.dir, err)
	}
	out := []FileInfo{}
	for _, e := range entries {
		if !e.Type().IsRegular() || ValidateName(e.Name()) != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, FileInfo{Name: e.Name(), Size: fi.Size(), MTime: fi.ModTime().UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// CheckFile validates name and that it is a regular file of the directory.
func (s *Service) CheckFile(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return fmt.Errorf("%w %q: log directory unavailable", ErrBadName, name)
	}
	defer root.Close()
	fi, err := root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%w %q: no such log file", ErrBadName, name)
	}
	return nil
}

// ErrTooSlow ends a stream whose client keeps falling behind.
var ErrTooSlow = errors.New("client too slow: fell behind repeatedly")

// Stream is one client's feed: snapshots first, then live events.
type Stream struct {
	svc   *Service
	sub   *Subscription
	files []string // nil: all
	tail  int
	seen  map[string]uint64
	lags  []time.Time
}

// Open subscribes a client to files (nil: all, now and future) and
// returns its stream, whose first batch is the snapshot of each file.
func (s *Service) Open(files []string, tail, queue int) *Stream {
	s.start()
	st := &Stream{svc: s, files: files, tail: tail, seen: map[string]uint64{}}
	st.sub = s.hub.subscribe(files, queue)
	return st
}

// Close unsubscribes.
func (st *Stream) Close() { st.svc.hub.unsubscribe(st.sub) }

// Snapshot returns the encoded snapshot events of the stream's files and
// marks what they cover, so that Next skips older events.
func (st *Stream) Snapshot() [][]byte {
	names := st.files
	if names == nil {
		st.svc.mu.Lock()
		for n := range st.svc.tailers {
			names = append(names, n)
		}
		st.svc.mu.Unlock()
		sort.Strings(names)
	}
	var out [][]byte
	for _, n := range names {
		t := st.svc.tailer(n)
		if t == nil {
			continue
		}
		ev, rev := t.snapshot(st.tail)
		st.seen[n] = rev
		out = append(out, encodeEvent(ev))
	}
	return out
}

var (
	pingEvent   = encodeEvent(Event{Type: "ping"})
	laggedEvent = encodeEvent(Event{Type: "lagged"})
)

// Next blocks until there is something to send: queued events (up to max
// of them, so a busy stream writes in batches), a ping when tick fires, or
// after a lag, a "lagged" event and fresh snapshots. It returns ctx's
// error when ctx ends, and ErrTooSlow after three lags within 30 s.
func (st *Stream) Next(ctx context.Context, tick <-chan time.Time, max int) ([][]byte, error) {
	for {
		// A lag first: what is queued is stale and the resync drops it.
		select {
		case <-st.sub.Lagged:
			return st.resync()
		default:
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-st.svc.ctx.Done():
			return nil, errors.New("log service stopped")
		case <-tick:
			return [][]byte{pingEvent}, nil
		case <-st.sub.Lagged:
			return st.resync()
		case m := <-st.sub.ch:
			out := st.accept(nil, m)
		drain:
			for len(out) < max {
				select {
				case m := <-st.sub.ch:
					out = st.accept(out, m)
				default:
					break drain
				}
			}
			if len(out) > 0 {
				return out, nil
			}
		}
	}
}

func (st *Stream) accept(out [][]byte, m message) [][]byte {
	if m.rev <= st.seen[m.file] {
		return out // covered by a snapshot already sent
	}
	return append(out, m.data)
}

func (st *Stream) resync() ([][]byte, error) {
	now := time.Now()
	st.lags = append(st.lags, now)
	for len(st.lags) > 0 && now.Sub(st.lags[0]) > 30*time.Second {
		st.lags = st.lags[1:]
	}
	if len(st.lags) >= 3 {
		return nil, ErrTooSlow
	}
	// Clear the flag first: a message dropped from here on lags again.
	st.sub.lagged.Store(false)
	for {
		select {
		case <-st.sub.ch:
			continue
		default:
		}
		break
	}
	return append([][]byte{laggedEvent}, st.Snapshot()...), nil
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
