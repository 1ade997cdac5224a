package caddymodules

import (
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// sharedPool keeps values that must survive a config reload (a sampler, a
// log watcher, tunnel processes, a failure limiter, session state), one per
// key, shared by every module instance that asks for that key. It is a
// caddy.UsagePool plus the loggers of the configs holding each value
// (configLoggers): a value outlives the config that made it, so it logs
// through the newest holder's logger. The last hold released closes the
// value when it has a Close method.
type sharedPool[T any] struct {
	pool *caddy.UsagePool
	name string // the module ID the values' log entries are named with
}

func newSharedPool[T any](name string) *sharedPool[T] {
	return &sharedPool[T]{pool: caddy.NewUsagePool(), name: name}
}

// sharedEntry is one value in the pool.
type sharedEntry[T any] struct {
	value T
	logs  *configLoggers
	log   *zap.Logger // logs.Logger(), made once
}

// Destruct closes the value, if it can be closed: no config holds it any
// more.
func (e *sharedEntry[T]) Destruct() error {
	if c, ok := any(e.value).(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// shared is one module instance's hold on a pooled value, from Provision
// to Cleanup.
type shared[T any] struct {
	Value T
	// Log writes through the logger of the newest config holding Value.
	Log *zap.Logger

	pool  *caddy.UsagePool
	key   string
	entry *sharedEntry[T]
	owner any
}

// hold takes the value under key, made by make (given the value's logger)
// when no config holds one yet, and makes logger, the logger of owner's
// config, the one the value logs through.
func (p *sharedPool[T]) hold(key string, owner any, logger *zap.Logger, make func(log *zap.Logger) (T, error)) (*shared[T], error) {
	val, _, err := p.pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		logs := newConfigLoggers(p.name)
		log := logs.Logger()
		v, err := make(log)
		if err != nil {
			return nil, err
		}
		return &sharedEntry[T]{value: v, logs: logs, log: log}, nil
	})
	if err != nil {
		return nil, err
	}
	e := val.(*sharedEntry[T])
	e.logs.add(owner, logger)
	return &shared[T]{Value: e.value, Log: e.log, pool: p.pool, key: key, entry: e, owner: owner}, nil
}

// references is how many holds the value under key has (tests).
func (p *sharedPool[T]) references(key string) (int, bool) { return p.pool.References(key) }

// release drops the hold; the last one closes the value. Safe on a nil
// hold (a Provision that failed before taking it) and when called twice.
func (s *shared[T]) release() error {
	if s == nil || s.entry == nil {
		return nil
	}
	s.entry.logs.remove(s.owner)
	s.entry = nil
	_, err := s.pool.Delete(s.key)
	return err
}

// configLoggers lets an object kept in a caddy.UsagePool (the tunnels
// manager, the GPU collector) log through the logger of the newest config
// that holds it. Such an object outlives the config that created it, and a
// later reload may close that config's log writers: logging through the
// first config's logger would then write to a closed file.
//
// Each config adds its logger at Provision and removes it at Cleanup. The
// newest config still holding the object is the current one: during a
// reload the new config is provisioned before the old one is cleaned up;
// a config that fails to load is cleaned up at once, and the running one
// becomes current again. With no config left (the object is being
// destroyed) the process's default logger is used.
//
// The pooled object is given Logger() once; every logger it derives (With,
// Named) follows the switch, since the switch works at the zapcore level.
type configLoggers struct {
	name string // the module ID the loggers are named with

	mu      sync.Mutex
	holders []loggerHolder // in Provision order

	current atomic.Pointer[zapcore.Core]
}

type loggerHolder struct {
	owner any
	core  zapcore.Core
}

func newConfigLoggers(name string) *configLoggers {
	l := &configLoggers{name: name}
	l.update()
	return l
}

// Logger is the logger to give the pooled object. Entries are named like
// the module's own, so Caddy's include/exclude rules apply to them as to
// the module's logger.
func (l *configLoggers) Logger() *zap.Logger {
	return zap.New(&switchCore{l: l}).Named(l.name)
}

// add makes log, the logger of the config owner belongs to, current.
func (l *configLoggers) add(owner any, log *zap.Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holders = slices.DeleteFunc(l.holders, func(h loggerHolder) bool { return h.owner == owner })
	l.holders = append(l.holders, loggerHolder{owner, log.Core()})
	l.updateLocked()
}

// remove drops owner's logger; the newest one left becomes current.
func (l *configLoggers) remove(owner any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holders = slices.DeleteFunc(l.holders, func(h loggerHolder) bool { return h.owner == owner })
	l.updateLocked()
}

func (l *configLoggers) update() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.updateLocked()
}

func (l *configLoggers) updateLocked() {
	var c zapcore.Core
	if n := len(l.holders); n > 0 {
		c = l.holders[n-1].core
	} else {
		c = caddy.Log().Core()
	}
	l.current.Store(&c)
}

func (l *configLoggers) core() zapcore.Core { return *l.current.Load() }

// switchCore is a zapcore.Core that hands every entry to the current
// config's core, with the fields added through With on the way.
type switchCore struct {
	l      *configLoggers
	fields []zapcore.Field
}

func (s *switchCore) target() zapcore.Core {
	c := s.l.core()
	if len(s.fields) > 0 {
		c = c.With(s.fields)
	}
	return c
}

func (s *switchCore) Enabled(lvl zapcore.Level) bool { return s.l.core().Enabled(lvl) }

func (s *switchCore) With(fields []zapcore.Field) zapcore.Core {
	return &switchCore{l: s.l, fields: append(slices.Clip(s.fields), fields...)}
}

// Check lets the current core decide and add itself, so the entry is
// written by that core (and its writers) alone.
func (s *switchCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return s.target().Check(ent, ce)
}

func (s *switchCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	return s.target().Write(ent, fields)
}

func (s *switchCore) Sync() error { return s.l.core().Sync() }

// each calls f with every value in the pool, until f returns false (the
// metrics and the idle watcher read the live tunnels and GPU samples).
func (p *sharedPool[T]) each(f func(T) bool) {
	p.pool.Range(func(_, v any) bool {
		if e, ok := v.(*sharedEntry[T]); ok {
			return f(e.value)
		}
		return true
	})
}
