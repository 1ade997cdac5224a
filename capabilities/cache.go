package capabilities

import (
	"context"
	"sync"
	"time"
)

// DefaultCacheTTL is how long Cached reuses a manifest.
const DefaultCacheTTL = 2 * time.Second

// Cached builds manifests for many callers (the portal's handlers, the MCP
// tools): one build per kind of manifest (with or without metrics,
// packages) runs at a time, and its result is reused for TTL, so a burst
// of requests costs one build. Safe for concurrent use.
type Cached struct {
	Sources Sources
	Options Options
	// TTL is how long a manifest is reused. Default: DefaultCacheTTL
	TTL time.Duration

	mu    sync.Mutex
	slots map[[2]bool]*cacheSlot
}

type cacheSlot struct {
	build sync.Mutex // one build of this kind at a time
	mu    sync.Mutex
	at    time.Time
	m     Manifest
	ok    bool
}

// Manifest returns a manifest no older than TTL, with live metrics and
// package versions when asked. The manifest is shared with other callers:
// read it, encode it, never modify it.
func (c *Cached) Manifest(ctx context.Context, metrics, packages bool) (Manifest, error) {
	key := [2]bool{metrics, packages}
	c.mu.Lock()
	if c.slots == nil {
		c.slots = map[[2]bool]*cacheSlot{}
	}
	s := c.slots[key]
	if s == nil {
		s = &cacheSlot{}
		c.slots[key] = s
	}
	c.mu.Unlock()
	ttl := c.TTL
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	fresh := func() (Manifest, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.m, s.ok && time.Since(s.at) < ttl
	}
	if m, ok := fresh(); ok {
		return m, nil
	}
	s.build.Lock()
	defer s.build.Unlock()
	if m, ok := fresh(); ok {
		return m, nil // built while this caller waited
	}
	opts := c.Options
	opts.IncludeMetrics, opts.IncludePackages = metrics, packages
	m, err := Build(ctx, c.Sources, opts)
	if err != nil {
		return m, err
	}
	s.mu.Lock()
	s.m, s.at, s.ok = m, time.Now(), true
	s.mu.Unlock()
	return m, nil
}
