package caddymodules

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

// Helpers of the modules' Provision and Validate.

// moduleErr names the module in err, by its module ID's last label
// ("portal_apps: probe_cache: …"), so that a bad setting in a long config
// says whose it is; nil stays nil.
func moduleErr(m caddy.Module, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", m.CaddyModule().ID.Name(), err)
}

// expandPlaceholders replaces Caddy's global placeholders ({env.X}, …) in
// each setting, in place, as Provision does before applying defaults: a
// placeholder that resolves to nothing leaves the setting empty.
func expandPlaceholders(settings ...*string) {
	repl := caddy.NewReplacer()
	for _, s := range settings {
		*s = repl.ReplaceAll(*s, "")
	}
}
