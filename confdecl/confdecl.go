// Package confdecl is what the portal's settings structs share, so that each
// setting is declared once: a typed field, with its JSON name, its godoc and
// its default, in the package that owns it. The Caddy module embeds that
// struct (its JSON is the package's), the Caddyfile walker fills the same
// fields by their JSON names, defaults come from the package's Default(),
// and the docs' settings tables are generated from the declaration (see
// DocTable). Nothing else names the setting again.
//
// It imports nothing of Caddy, so plain packages can use it.
package confdecl

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes JSON the way people
// write durations: "90s", "1m30s", "7d" (a day is 24h), or an integer of
// nanoseconds, as caddy.Duration accepts. It is written back as a string
// ("1m30s") so that the running config read from the admin API is legible.
type Duration time.Duration

// Std is the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats the duration as people write it: whole days as "7d",
// otherwise like time.Duration without its trailing zero units ("1m", not
// "1m0s"; "1h30m", not "1h30m0s"). ParseDuration reads it back.
func (d Duration) String() string {
	const day = 24 * time.Hour
	t := time.Duration(d)
	if t >= day && t%day == 0 {
		return strconv.FormatInt(int64(t/day), 10) + "d"
	}
	s := t.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string or an integer of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string such as \"1m30s\" or an integer of nanoseconds, got %s", clip(string(b), 40))
	}
	*d = Duration(n)
	return nil
}

// maxDurationText bounds the input ParseDuration looks at; a real duration
// is a few characters long.
const maxDurationText = 64

// ParseDuration is time.ParseDuration plus a leading day count ("2d",
// "1.5d", "1d12h"), since session lifetimes and cooldowns are naturally
// written in days.
func ParseDuration(s string) (time.Duration, error) {
	if len(s) > maxDurationText {
		return 0, fmt.Errorf("duration %q: too long", clip(s, maxDurationText))
	}
	days, rest, hasDays := strings.Cut(s, "d")
	if !hasDays {
		return time.ParseDuration(s)
	}
	neg := strings.HasPrefix(days, "-")
	n, err := strconv.ParseFloat(strings.TrimPrefix(strings.TrimPrefix(days, "-"), "+"), 64)
	if err != nil || n < 0 || math.IsNaN(n) || strings.ContainsAny(days[min(len(days), 1):], "+-") {
		return 0, fmt.Errorf("duration %q: want a number of days before \"d\", such as 7d or 1.5d", s)
	}
	const maxDays = float64(1<<63-1) / float64(24*time.Hour)
	if n > maxDays {
		return 0, fmt.Errorf("duration %q: too large", s)
	}
	total := time.Duration(n * float64(24*time.Hour))
	if rest != "" {
		if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
			return 0, fmt.Errorf("duration %q: only the day count may carry a sign", s)
		}
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %v", s, err)
		}
		if total > time.Duration(1<<63-1)-r {
			return 0, fmt.Errorf("duration %q: too large", s)
		}
		total += r
	}
	if neg {
		total = -total
	}
	return total, nil
}

// FillDefaults sets each zero-valued exported field of *dst to the value the
// same field has in def. Nested structs (not pointers) are filled field by
// field, so a partly set block keeps what was set. Zero means "not given":
// a setting whose zero value is meaningful must be a pointer or have a
// default of zero.
func FillDefaults[T any](dst *T, def T) {
	fill(reflect.ValueOf(dst).Elem(), reflect.ValueOf(def))
}

func fill(dst, def reflect.Value) {
	t := dst.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		d, v := dst.Field(i), def.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}) {
			fill(d, v)
			continue
		}
		if d.IsZero() {
			d.Set(v)
		}
	}
}

// Field is one setting of a config struct: its JSON name and where it is.
type Field struct {
	// JSON is the key in the module's JSON and the Caddyfile option name.
	JSON string
	// Go is the Go field name.
	Go string
	// Type is the field's type.
	Type reflect.Type
	// Index locates the field for reflect.Value.FieldByIndex.
	Index []int
}

// Fields lists the settings of the struct type of v (a struct or a pointer
// to one) in declaration order. Embedded structs without a JSON name are
// flattened, as encoding/json does; fields tagged "-" or unexported are
// left out.
func Fields(v any) []Field {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []Field
	collectFields(t, nil, &out)
	return out
}

func collectFields(t reflect.Type, index []int, out *[]Field) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		idx := append(append([]int(nil), index...), i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, idx, out)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		*out = append(*out, Field{JSON: name, Go: f.Name, Type: f.Type, Index: idx})
	}
}

// FieldError is a bad setting, named by its JSON key, as Validate methods
// return it.
type FieldError struct {
	Field string // JSON name, e.g. "ring_lines"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// errorf returns a *FieldError for the field.
func errorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Check collects the failures of a Validate method, so that one call
// reports every bad field at once.
type Check struct{ errs []error }

// NotNegative fails when a number or duration is below zero.
func (c *Check) NotNegative(field string, v int64) {
	if v < 0 {
		c.errs = append(c.errs, errorf(field, "must not be negative, got %d", v))
	}
}

// NotNegativeDuration fails when d is below zero.
func (c *Check) NotNegativeDuration(field string, d Duration) {
	if d < 0 {
		c.errs = append(c.errs, errorf(field, "must not be negative, got %v", d))
	}
}

// AtLeast fails when v < lo.
func (c *Check) AtLeast(field string, v, lo int64) {
	if v < lo {
		c.errs = append(c.errs, errorf(field, "must be at least %d, got %d", lo, v))
	}
}

// DurationAtLeast fails when d < lo.
func (c *Check) DurationAtLeast(field string, d, lo Duration) {
	if d < lo {
		c.errs = append(c.errs, errorf(field, "must be at least %v, got %v", lo, d))
	}
}

// OneOf fails when v is not among allowed.
func (c *Check) OneOf(field, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.errs = append(c.errs, errorf(field, "%q: want %s", v, strings.Join(allowed, ", ")))
}

// Failf adds a failure of its own.
func (c *Check) Failf(field, format string, args ...any) {
	c.errs = append(c.errs, errorf(field, format, args...))
}

// Err is nil, or every failure joined.
func (c *Check) Err() error { return errors.Join(c.errs...) }

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Name is the JSON name of the field of the struct *cfg that field points
// to: a Validate method names a setting in its messages without spelling
// the name a second time.
//
//	ck.AtLeast(confdecl.Name(&c, &c.RingLines), int64(c.RingLines), 1)
//
// It panics when field is not a field of *cfg, a mistake any test of the
// method finds.
func Name(cfg, field any) string {
	rv := reflect.ValueOf(cfg).Elem()
	want := reflect.ValueOf(field).Pointer()
	for _, f := range Fields(cfg) {
		if rv.FieldByIndex(f.Index).Addr().Pointer() == want {
			return f.JSON
		}
	}
	panic(fmt.Sprintf("confdecl.Name: %T has no field at %#x", cfg, want))
}
