package caddymodules

import (
	"os"
	"sync"
	"time"

	"github.com/instanceportal/portal/exposure"
)

// exposureScanEvery bounds how often /api/boot rescans the sockets: the
// page asks every few seconds, a scan walks every process's fds.
const exposureScanEvery = 10 * time.Second

// exposureCache holds the last scan of listeners that bypass the portal
// (package exposure), for /api/boot's "exposed" field.
type exposureCache struct {
	dir  string
	mu   sync.Mutex
	at   time.Time
	last []exposure.Exposure
}

func newExposureCache() *exposureCache {
	dir := os.Getenv(exposure.AllowlistDirEnv)
	if dir == "" {
		dir = exposure.DefaultAllowlistDir
	}
	return &exposureCache{dir: dir}
}

// get returns the exposed listeners, rescanning when the last scan is
// older than exposureScanEvery. A broken allowlist allows nothing (the
// warning shows more, never less).
func (c *exposureCache) get() []exposure.Exposure {
	if c == nil {
		return []exposure.Exposure{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < exposureScanEvery {
		return c.last
	}
	allow, _ := exposure.LoadAllowlist(c.dir)
	found, err := exposure.Scan(exposure.DefaultProcDir, allow, os.Getenv)
	if err != nil {
		found = nil
	}
	if found == nil {
		found = []exposure.Exposure{}
	}
	c.at, c.last = time.Now(), found
	return found
}
