package provisioner

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/redact"
)

// logger writes the run's log the reference's way
// ("2006-01-02 15:04:05 [INFO] message") to stdout and the log file, with
// URL credentials masked.
type logger struct {
	mu   sync.Mutex
	out  io.Writer
	file *os.File
	now  func() time.Time
	mask *masker
}

func (l *logger) open(path string) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.file != nil {
		l.file.Close()
	}
	l.file = f
	l.mu.Unlock()
	return nil
}

func (l *logger) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
}

// masker hides what must never be shown: the values of the token
// variables, wherever they appear, and URL credentials.
type masker struct {
	mu sync.RWMutex
	r  *strings.Replacer
}

// minSecret is the shortest value hidden: shorter ones would cut words.
const minSecret = 6

// set hides these values from now on.
func (m *masker) set(values ...string) {
	var pairs []string
	for _, v := range values {
		if len(v) >= minSecret {
			pairs = append(pairs, v, "…")
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.r = nil
	if len(pairs) > 0 {
		m.r = strings.NewReplacer(pairs...)
	}
}

// text is s with secrets and URL credentials hidden.
func (m *masker) text(s string) string {
	if m != nil {
		m.mu.RLock()
		if m.r != nil {
			s = m.r.Replace(s)
		}
		m.mu.RUnlock()
	}
	if strings.Contains(s, "://") {
		return redact.URLs(s)
	}
	return s
}

func (l *logger) print(level, msg string) {
	msg = l.mask.text(msg)
	line := l.now().Format("2006-01-02 15:04:05") + " [" + level + "] " + msg + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.out != nil {
		io.WriteString(l.out, line)
	}
	if l.file != nil {
		l.file.WriteString(line)
	}
}

func (l *logger) Info(msg string)  { l.print("INFO", msg) }
func (l *logger) Warn(msg string)  { l.print("WARNING", msg) }
func (l *logger) Error(msg string) { l.print("ERROR", msg) }

// tailLines bounds the current command's lines kept in the progress.
const tailLines = 20

// progress is the run's provstatus document, written at most every
// interval (a download reports many times a second) and at once on a
// phase change.
type progress struct {
	mu       sync.Mutex
	st       provstatus.Status
	path     string // "" in a dry run: a dry run publishes nothing
	interval time.Duration
	last     time.Time
	dirty    bool
	now      func() time.Time
	stop     chan struct{}
	wg       sync.WaitGroup
	errOnce  sync.Once
	log      *logger
	mask     *masker
}

func newProgress(path string, interval time.Duration, now func() time.Time, log *logger) *progress {
	p := &progress{path: path, interval: interval, now: now, log: log, mask: log.mask, stop: make(chan struct{})}
	if path != "" {
		p.wg.Add(1)
		go p.loop()
	}
	return p
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.dirty {
				p.writeLocked()
			}
			p.mu.Unlock()
		}
	}
}

// update changes the document; now forces a write (a phase change),
// otherwise it waits for the next tick unless the interval has passed.
func (p *progress) update(now bool, f func(*provstatus.Status)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.st)
	p.dirty = true
	if now || p.now().Sub(p.last) >= p.interval {
		p.writeLocked()
	}
}

func (p *progress) writeLocked() {
	p.dirty = false
	if p.path == "" {
		return
	}
	p.last = p.now()
	p.st.UpdatedAt = p.last.UTC()
	if err := provstatus.Write(p.path, p.st); err != nil {
		p.errOnce.Do(func() { p.log.Warn("cannot publish progress to " + p.path + ": " + err.Error()) })
	}
}

// close writes the last state and stops the ticker.
func (p *progress) close() {
	if p.path != "" {
		close(p.stop)
		p.wg.Wait()
	}
	p.mu.Lock()
	p.writeLocked()
	p.mu.Unlock()
}

func (p *progress) snapshot() provstatus.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// phase sets one phase's state (and its timing).
func (p *progress) phase(name, state, errText string, items int) {
	p.update(true, func(s *provstatus.Status) {
		t := p.now().UTC()
		for i := range s.Phases {
			ph := &s.Phases[i]
			if ph.Name != name {
				continue
			}
			ph.State = state
			if items > 0 {
				ph.Items = items
			}
			switch state {
			case provstatus.Running:
				ph.StartedAt, ph.FinishedAt, ph.Error = &t, nil, ""
			case provstatus.Done, provstatus.Skipped, provstatus.Failed, provstatus.Stopped:
				ph.FinishedAt = &t
				ph.Error = p.mask.text(errText)
			}
		}
		if state != provstatus.Running {
			s.Command = nil
		}
	})
}

// commandLine records a new command of phase.
func (p *progress) command(phase, line string) {
	p.update(false, func(s *provstatus.Status) {
		s.Command = &provstatus.Command{Phase: phase, Line: p.mask.text(line), Tail: []string{}}
	})
}

// output adds a line to the current command's tail.
func (p *progress) output(line string) {
	p.update(false, func(s *provstatus.Status) {
		if s.Command == nil {
			return
		}
		s.Command.Tail = append(s.Command.Tail, p.mask.text(line))
		if n := len(s.Command.Tail); n > tailLines {
			s.Command.Tail = append(s.Command.Tail[:0:0], s.Command.Tail[n-tailLines:]...)
		}
	})
}

// download records one download's progress, by ID.
func (p *progress) download(d provstatus.Download) {
	p.update(d.State != provstatus.Running, func(s *provstatus.Status) {
		d.Source = p.mask.text(d.Source)
		d.Error = p.mask.text(d.Error)
		for i := range s.Downloads {
			if s.Downloads[i].ID == d.ID {
				s.Downloads[i] = d
				return
			}
		}
		s.Downloads = append(s.Downloads, d)
	})
}
