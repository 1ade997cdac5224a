package portalconfig

import "strings"

// FindLike returns the app a supervisor script means by name, matching
// the key or display name in any case: an exact match first, else the first
// app whose key or name contains name. The reference's exit_portal.sh
// greps portal.yaml for the name, so `exit_portal.sh comfy` finds
// "ComfyUI"; this keeps that while looking at names only (never at a
// hostname or path).
func (c *Config) FindLike(name string) (App, bool) {
	if a, ok := c.Find(name); ok {
		return a, true
	}
	needle := strings.ToLower(strings.TrimSpace(name))
	if needle == "" {
		return App{}, false
	}
	for _, a := range c.Apps {
		if strings.Contains(strings.ToLower(a.Key), needle) || strings.Contains(strings.ToLower(a.Name), needle) {
			return a, true
		}
	}
	return App{}, false
}
