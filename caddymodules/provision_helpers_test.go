package caddymodules

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// provision runs a module's lifecycle as Caddy does for a test: Provision
// with a throwaway context, then Validate when it has one, and Cleanup
// when the test ends (Cleanup must tolerate running after the test's own).
func provision(t *testing.T, m caddy.Provisioner) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	t.Cleanup(cancel)
	if err := m.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if c, ok := m.(caddy.CleanerUpper); ok {
		t.Cleanup(func() { _ = c.Cleanup() })
	}
	if v, ok := m.(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
}
