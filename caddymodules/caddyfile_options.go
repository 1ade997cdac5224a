package caddymodules

import (
	"reflect"
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/confdecl"
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

// unmarshalConfigBlock fills cfg (a pointer to a settings struct, usually
// the package Config a module embeds) from the block the dispenser is at.
// Each option is named by the field's JSON key and parsed by the field's
// type, so a setting declared once in its package is also its Caddyfile
// option:
//
//	string             one argument
//	integer            one argument, at least 0 (the package's Validate
//	                   checks the rest)
//	bool               no argument (true) or one of true/false
//	confdecl.Duration  one argument such as 500ms, 2s or 7d, not negative
//	[]string           one or more arguments; the option may repeat
//
// special handles options that are not plain fields (or that need another
// syntax); it is consulted first. Unknown options are refused, and so is
// an option given twice (lists excepted).
func unmarshalConfigBlock(d *caddyfile.Dispenser, module string, cfg any, special map[string]func(args []string) error) error {
	v := reflect.ValueOf(cfg).Elem()
	byName := map[string]confdecl.Field{}
	var repeatable []string
	for _, f := range confdecl.Fields(cfg) {
		byName[f.JSON] = f
		if f.Type.Kind() == reflect.Slice {
			repeatable = append(repeatable, f.JSON)
		}
	}
	for name := range special {
		// A special option checks its own arity and repetition.
		repeatable = append(repeatable, name)
	}
	return forEachOption(d, module, repeatable, func(opt string, args []string) error {
		if fn, ok := special[opt]; ok {
			return fn(args)
		}
		f, ok := byName[opt]
		if !ok {
			return d.Errf("%s: unrecognized option %q", module, opt)
		}
		field := v.FieldByIndex(f.Index)
		switch {
		case f.Type == reflect.TypeOf(confdecl.Duration(0)):
			arg, err := oneArg(d, args)
			if err != nil {
				return err
			}
			dur, err := confdecl.ParseDuration(arg)
			if err != nil || dur < 0 {
				return d.Errf("%s: %s %q: want a duration such as 500ms, 2s or 7d", module, opt, arg)
			}
			field.SetInt(int64(dur))
		case f.Type.Kind() == reflect.String:
			arg, err := oneArg(d, args)
			if err != nil {
				return err
			}
			field.SetString(arg)
		case f.Type.Kind() == reflect.Bool:
			switch {
			case len(args) == 0:
				field.SetBool(true)
			case len(args) == 1 && (args[0] == "true" || args[0] == "false"):
				field.SetBool(args[0] == "true")
			default:
				return d.Errf("%s: %s: want no argument, true or false", module, opt)
			}
		case f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Int64:
			arg, err := oneArg(d, args)
			if err != nil {
				return err
			}
			n, err := countArg(d, module, opt, arg, 0)
			if err != nil {
				return err
			}
			field.SetInt(int64(n))
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			if len(args) == 0 {
				return d.ArgErr()
			}
			field.Set(reflect.AppendSlice(field, reflect.ValueOf(args)))
		default:
			return d.Errf("%s: option %q cannot be set in a Caddyfile; use JSON", module, opt)
		}
		return nil
	})
}

// handlerDirective registers the Caddyfile directive name for the handler
// module T, whose UnmarshalCaddyfile reads the directive's tokens, and
// orders it before the directive before.
func handlerDirective[T any, PT interface {
	*T
	caddyhttp.MiddlewareHandler
	caddyfile.Unmarshaler
}](name, before string) {
	httpcaddyfile.RegisterHandlerDirective(name, func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		m := PT(new(T))
		err := m.UnmarshalCaddyfile(h.Dispenser)
		return m, err
	})
	httpcaddyfile.RegisterDirectiveOrder(name, httpcaddyfile.Before, before)
}

// unmarshalConfigDirective reads a directive (or global option) that takes
// no argument, and its block of cfg's options (unmarshalConfigBlock).
func unmarshalConfigDirective(d *caddyfile.Dispenser, module string, cfg any, special map[string]func(args []string) error) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	return unmarshalConfigBlock(d, module, cfg, special)
}
