package caddymodules

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The block parsers of our directives and global options share these: each
// option appears once (unless repeatable), takes no block of its own, and
// numbers and durations are checked with the same words everywhere. Errors
// go through d.Errf, which adds the Caddyfile's name and line.

// forEachOption calls f with each option of the block that the dispenser is
// at and the option's arguments. It refuses an option given twice (except
// those in repeatable) and a nested block; module prefixes the messages.
func forEachOption(d *caddyfile.Dispenser, module string, repeatable []string, f func(opt string, args []string) error) error {
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("%s: duplicate option %q", module, opt)
		}
		seen[opt] = true
		for _, r := range repeatable {
			if r == opt {
				seen[opt] = false
			}
		}
		args := d.RemainingArgs()
		if d.Next() { // RemainingArgs stops before a block's "{", even an empty one's
			brace := d.ValRaw() == "{"
			d.Prev()
			if brace {
				return d.Errf("%s: option %q takes no block", module, opt)
			}
		}
		if err := f(opt, args); err != nil {
			return err
		}
	}
	return nil
}

// oneArg is the single argument of an option.
func oneArg(d *caddyfile.Dispenser, args []string) (string, error) {
	if len(args) != 1 {
		return "", d.ArgErr()
	}
	return args[0], nil
}

// countArg parses an integer option that must be at least min.
func countArg(d *caddyfile.Dispenser, module, opt, arg string, min int) (int, error) {
	n, err := strconv.Atoi(arg)
	if err != nil || n < min {
		return 0, d.Errf("%s: %s %q: want an integer of at least %d", module, opt, arg, min)
	}
	return n, nil
}

// positive is the smallest duration allowed where only zero is refused.
const positive = time.Nanosecond

// durationArg parses a duration option that must be at least min (0 allows
// zero, positive refuses only zero); negative durations are always refused.
func durationArg(d *caddyfile.Dispenser, module, opt, arg string, min time.Duration) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(arg)
	switch {
	case err != nil || dur < 0:
		return 0, d.Errf("%s: %s %q: want a duration such as 500ms or 2s", module, opt, arg)
	case dur < min && min == positive:
		return 0, d.Errf("%s: %s %q: want a positive duration", module, opt, arg)
	case dur < min:
		return 0, d.Errf("%s: %s %q: want at least %v", module, opt, arg, min)
	}
	return caddy.Duration(dur), nil
}
