package caddymodules

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testwait"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestConfigLoggersFollowNewestHolder: the pooled object's logger (and a
// logger it derived with With before the switch) writes to the newest
// config still holding it: the new one during and after a reload, the old
// one again when the new one failed to load.
func TestConfigLoggersFollowNewestHolder(t *testing.T) {
	oldCore, oldLogs := observer.New(zapcore.DebugLevel)
	newCore, newLogs := observer.New(zapcore.InfoLevel)
	oldCfg, newCfg := new(int), new(int)

	l := newConfigLoggers("tunnels")
	pooled := l.Logger()
	derived := pooled.With(zap.String("tunnel", "http://localhost:8080"))

	l.add(oldCfg, zap.New(oldCore))
	derived.Debug("one")
	l.add(newCfg, zap.New(newCore)) // reload: the new config provisions first
	derived.Debug("dropped: the new config logs at info")
	derived.Info("two")
	l.remove(oldCfg) // then the old one is cleaned up
	pooled.Warn("three")
	if got := messages(oldLogs); got != "one" {
		t.Errorf("old config's log: %q", got)
	}
	if got := messages(newLogs); got != "two three" {
		t.Errorf("new config's log: %q", got)
	}
	e := newLogs.All()[0]
	if e.LoggerName != "tunnels" || e.ContextMap()["tunnel"] != "http://localhost:8080" {
		t.Errorf("entry lost its name or fields: %+v", e)
	}

	// A config that fails to load is cleaned up at once: the running one
	// becomes current again.
	failedCore, failedLogs := observer.New(zapcore.DebugLevel)
	failed := new(int)
	l.add(failed, zap.New(failedCore))
	l.remove(failed)
	pooled.Info("four")
	if failedLogs.Len() != 0 || !strings.HasSuffix(messages(newLogs), "four") {
		t.Errorf("after a failed load: failed=%q new=%q", messages(failedLogs), messages(newLogs))
	}
	l.remove(newCfg)
	pooled.Info("to the default logger") // must not panic with no holder left
}

func messages(o *observer.ObservedLogs) string {
	var m []string
	for _, e := range o.All() {
		m = append(m, e.Message)
	}
	return strings.Join(m, " ")
}

// testSink is a log writer module for the reload tests: a buffer that the
// test can close, as a reload closes the old config's log file. Writes
// after Close fail and are counted.
type testSink struct {
	Name string `json:"name"`
}

type sinkBuffer struct {
	mu          sync.Mutex
	buf         bytes.Buffer
	closed      bool
	lateWrites  int
	closedByCfg bool
}

var (
	sinksMu  sync.Mutex
	sinks    = map[string]*sinkBuffer{}
	sinkOnce sync.Once
)

func registerTestSink() {
	sinkOnce.Do(func() { caddy.RegisterModule(testSink{}) })
}

func sinkNamed(name string) *sinkBuffer {
	sinksMu.Lock()
	defer sinksMu.Unlock()
	if sinks[name] == nil {
		sinks[name] = &sinkBuffer{}
	}
	return sinks[name]
}

func (testSink) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.logging.writers.portal_test_sink", New: func() caddy.Module { return new(testSink) }}
}
func (s testSink) String() string    { return "test sink " + s.Name }
func (s testSink) WriterKey() string { return "portal_test_sink:" + s.Name }
func (s testSink) OpenWriter() (io.WriteCloser, error) {
	return sinkCloser{sinkNamed(s.Name)}, nil
}

// sinkCloser is what Caddy gets: its Close marks the sink as closed by
// Caddy (which v2.11.9 never does on a reload; see the report).
type sinkCloser struct{ *sinkBuffer }

func (c sinkCloser) Close() error {
	c.mu.Lock()
	c.closedByCfg = true
	c.mu.Unlock()
	return c.sinkBuffer.Close()
}

func (b *sinkBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.lateWrites++
		return 0, os.ErrClosed
	}
	return b.buf.Write(p)
}

func (b *sinkBuffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func (b *sinkBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *sinkBuffer) late() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lateWrites
}

// loadSinkConfig loads a config whose loggers in include write JSON lines
// to the test sink named sink, plus apps.
func loadSinkConfig(t *testing.T, sink string, include []string, apps map[string]any) {
	t.Helper()
	registerTestSink()
	cfg := caddyconfig.JSON(map[string]any{
		"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{
			"default": map[string]any{"level": "ERROR", "exclude": include},
			"pooled": map[string]any{"level": "DEBUG", "include": include,
				"writer": map[string]any{"output": "portal_test_sink", "name": sink}},
		}},
		"apps": apps,
	}, nil)
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cfg)
	}
}

// reloadClosingOldSink loads apps with logs to sink "<test>-old", then
// again with "<test>-new" (a reload), and closes the old sink as the
// reload would close the old config's log file.
func reloadClosingOldSink(t *testing.T, include []string, apps map[string]any) (oldSink, newSink *sinkBuffer) {
	t.Helper()
	oldName, newName := t.Name()+"-old", t.Name()+"-new"
	loadSinkConfig(t, oldName, include, apps)
	t.Cleanup(func() { _ = caddy.Stop() })
	loadSinkConfig(t, newName, include, apps)
	oldSink, newSink = sinkNamed(oldName), sinkNamed(newName)
	oldSink.mu.Lock()
	closedByCaddy := oldSink.closedByCfg
	oldSink.mu.Unlock()
	if !closedByCaddy {
		t.Logf("Caddy left the old config's log writer open after the reload; closing it here")
	}
	_ = oldSink.Close()
	return oldSink, newSink
}

// waitLogged waits until the sink holds want.
func waitLogged(t *testing.T, sink *sinkBuffer, want string, other *sinkBuffer) {
	t.Helper()
	if !testwait.Poll(10*time.Second, 0, func() bool { return strings.Contains(sink.String(), want) }) {
		t.Fatalf("%q did not reach the new config's log.\nnew: %s\nold: %s (%d writes after it was closed)", want, sink, other, other.late())
	}
}
