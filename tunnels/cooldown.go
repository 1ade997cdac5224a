package tunnels

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// cooldownFile is the name of the file in the state directory that keeps a
// rate-limit cooldown across restarts of the binary: Cloudflare's limit is
// per address, and hammering it again right after a restart only extends it.
const cooldownFile = "tunnels-cooldown.json"

// cooldown is the shared quick-tunnel rate-limit cooldown. Every quick
// tunnel waits for it before asking for a new URL.
type cooldown struct {
	mu    sync.Mutex
	path  string // "" when there is no state directory
	until time.Time
}

type cooldownState struct {
	Until time.Time `json:"until"`
}

// loadCooldown reads the persisted cooldown; a missing or unreadable file
// means no cooldown (the error is returned for logging).
func loadCooldown(stateDir string) (*cooldown, error) {
	c := &cooldown{}
	if stateDir == "" {
		return c, nil
	}
	c.path = filepath.Join(stateDir, cooldownFile)
	b, err := os.ReadFile(c.path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading %s: %w", c.path, err)
	}
	var s cooldownState
	if err := json.Unmarshal(b, &s); err != nil {
		return c, fmt.Errorf("reading %s: %w", c.path, err)
	}
	c.until = s.Until
	return c, nil
}

// end is the end of the cooldown (zero or past: none).
func (c *cooldown) end() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.until
}

// extend moves the end of the cooldown to at least until and persists it
// (written to a temp file and renamed, so a crash never leaves half a file).
func (c *cooldown) extend(until time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !until.After(c.until) {
		return nil
	}
	c.until = until
	if c.path == "" {
		return nil
	}
	b, err := json.Marshal(cooldownState{Until: until.UTC()})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o755); err != nil {
		return fmt.Errorf("saving cooldown: %w", err)
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("saving cooldown: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("saving cooldown: %w", err)
	}
	return nil
}
