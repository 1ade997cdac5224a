package portalconfig

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// PortalConfigVar is the environment variable that carries the app list as
// one string when there is no usable portal.yaml.
const PortalConfigVar = "PORTAL_CONFIG"

// ErrNoConfig is returned when neither portal.yaml nor PORTAL_CONFIG holds
// any application.
var ErrNoConfig = errors.New("no applications: portal.yaml is empty or has no `applications` map, and PORTAL_CONFIG is not set")

// Load parses body (the portal.yaml bytes, named source in messages) and, if
// it holds no usable `applications` map, falls back to portalConfig (the
// PORTAL_CONFIG value). The result is validated.
func Load(body []byte, source, portalConfig string) (*Config, []Warning, error) {
	cfg, warns, err := ParseYAML(body, source)
	if err != nil {
		return nil, warns, err
	}
	if len(cfg.Apps) == 0 {
		if strings.TrimSpace(portalConfig) == "" {
			return nil, warns, fmt.Errorf("%s: %w", source, ErrNoConfig)
		}
		cfg, err = ParsePortalConfig(portalConfig)
		if err != nil {
			return nil, warns, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, warns, err
	}
	return cfg, warns, nil
}

// known keys of an application entry.
var appKeys = map[string]bool{
	"hostname": true, "external_port": true, "internal_port": true, "open_path": true, "name": true, "scheme": true,
}

// ParseYAML reads portal.yaml. An empty document, or one without an
// `applications` map, yields a Config with no apps (the caller may fall back
// to PORTAL_CONFIG). Unknown keys are warnings; wrong types and YAML syntax
// errors are errors naming the line, the app and the field. The result is
// not yet validated (see Validate).
func ParseYAML(body []byte, source string) (*Config, []Warning, error) {
	cfg := &Config{Source: source}
	var warns []Warning
	if len(bytes.TrimSpace(body)) == 0 {
		return cfg, nil, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: YAML syntax: %s", source, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return cfg, nil, nil // only comments
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return cfg, nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, &FieldError{Source: source, Line: root.Line, Msg: "top level must be a mapping with an `applications` key"}
	}
	var apps *yaml.Node
	appsLine := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value == "applications" {
			if apps != nil {
				// YAML decoders keep the last of two equal keys; say so
				// rather than let the first list vanish unnoticed.
				warns = append(warns, Warning{Source: source, Line: k.Line, Msg: fmt.Sprintf("a second `applications` key replaces the first (line %d)", appsLine)})
			}
			apps, appsLine = v, k.Line
			continue
		}
		warns = append(warns, Warning{Source: source, Line: k.Line, Msg: fmt.Sprintf("unknown top-level key %q ignored", k.Value)})
	}
	if apps == nil || (apps.Kind == yaml.ScalarNode && apps.Tag == "!!null") {
		return cfg, warns, nil
	}
	if apps.Kind != yaml.MappingNode {
		return nil, warns, &FieldError{Source: source, Line: apps.Line, Field: "applications", Msg: "must be a mapping of app name to settings"}
	}
	for i := 0; i+1 < len(apps.Content); i += 2 {
		k, v := apps.Content[i], apps.Content[i+1]
		app, w, err := parseYAMLApp(source, k, v)
		warns = append(warns, w...)
		if err != nil {
			return nil, warns, err
		}
		if app.Scheme != "" && app.Proxied() {
			warns = append(warns, Warning{Source: source, Line: app.Line, App: app.Key,
				Msg: "scheme ignored: it describes a link-only app; a proxied app uses the portal's scheme (ENABLE_HTTPS)"})
			app.Scheme = ""
		}
		cfg.Apps = append(cfg.Apps, app)
	}
	return cfg, warns, nil
}

func parseYAMLApp(source string, k, v *yaml.Node) (App, []Warning, error) {
	app := App{Key: k.Value, Line: k.Line}
	fail := func(line int, field, msg string) (App, []Warning, error) {
		return App{}, nil, &FieldError{Source: source, Line: line, App: app.Key, Field: field, Msg: msg}
	}
	if k.Kind != yaml.ScalarNode || strings.TrimSpace(k.Value) == "" {
		return fail(k.Line, "", "app name must be a non-empty string")
	}
	if v.Kind == yaml.AliasNode && v.Alias != nil { // `b: *a` reuses another app's settings
		v = v.Alias
	}
	if v.Kind != yaml.MappingNode {
		return fail(v.Line, "", "settings must be a mapping (hostname, external_port, internal_port, open_path, name)")
	}
	var warns []Warning
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		fk, fv := v.Content[i], v.Content[i+1]
		field := fk.Value
		if !appKeys[field] {
			warns = append(warns, Warning{Source: source, Line: fk.Line, App: app.Key, Msg: fmt.Sprintf("unknown key %q ignored", field)})
			continue
		}
		if seen[field] {
			return fail(fk.Line, field, "given twice")
		}
		seen[field] = true
		if fv.Kind != yaml.ScalarNode {
			return fail(fv.Line, field, "must be a single value")
		}
		switch field {
		case "external_port", "internal_port":
			p, err := parsePort(fv.Value)
			if err != nil {
				return fail(fv.Line, field, fmt.Sprintf("%q: %v", fv.Value, err))
			}
			if field == "external_port" {
				app.ExternalPort = p
			} else {
				app.InternalPort = p
			}
		case "hostname":
			app.Hostname = strings.TrimSpace(fv.Value)
		case "open_path":
			app.OpenPath = strings.TrimSpace(fv.Value)
		case "name":
			app.Name = strings.TrimSpace(fv.Value)
		case "scheme":
			app.Scheme = strings.ToLower(strings.TrimSpace(fv.Value))
			if app.Scheme != "http" && app.Scheme != "https" {
				return fail(fv.Line, field, fmt.Sprintf("%q: want http or https", fv.Value))
			}
		}
	}
	for _, req := range []string{"hostname", "external_port", "internal_port"} {
		if !seen[req] {
			return fail(k.Line, req, "missing")
		}
	}
	return app, warns, nil
}

// ParsePortalConfig reads the PORTAL_CONFIG form:
// hostname:external:internal:open_path:name, entries separated by `|`. The
// name may itself contain `:`. Empty entries (a trailing `|`) are skipped.
// Errors name the entry number, counted from 1.
func ParsePortalConfig(s string) (*Config, error) {
	cfg := &Config{Source: PortalConfigVar}
	for i, raw := range strings.Split(s, "|") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		key := "entry " + strconv.Itoa(i+1)
		fail := func(field, msg string) (*Config, error) {
			return nil, &FieldError{Source: PortalConfigVar, App: key, Field: field, Msg: msg}
		}
		parts := strings.SplitN(raw, ":", 5)
		if len(parts) < 4 {
			return fail("", fmt.Sprintf("%q: want hostname:external_port:internal_port:open_path:name", raw))
		}
		app := App{Key: key, Hostname: strings.TrimSpace(parts[0]), OpenPath: strings.TrimSpace(parts[3])}
		if len(parts) == 5 {
			app.Name = strings.TrimSpace(parts[4])
		}
		var err error
		if app.ExternalPort, err = parsePort(parts[1]); err != nil {
			return fail("external_port", fmt.Sprintf("%q: %v", parts[1], err))
		}
		if app.InternalPort, err = parsePort(parts[2]); err != nil {
			return fail("internal_port", fmt.Sprintf("%q: %v", parts[2], err))
		}
		if app.Name != "" {
			app.Key = app.Name
		}
		cfg.Apps = append(cfg.Apps, app)
	}
	return cfg, nil
}

// Validate fills defaults (name, open_path, scheme) and checks the apps as a
// whole: required fields, well-formed paths, and port conflicts — two apps
// proxying the same external port to different targets, or an app whose
// internal port is a port the portal listens on. A link-only entry may share
// the external port of a proxied app: it is a second link into that app
// (Vast.ai's boot adds `Jupyter Terminal` 8080:8080 /terminals/1 beside
// `Jupyter` 8080:18080).
func (c *Config) Validate() error {
	fail := func(a App, field, msg string) error {
		return &FieldError{Source: c.Source, Line: a.Line, App: a.Key, Field: field, Msg: msg}
	}
	names := map[string]bool{}
	var portal *App
	for i := range c.Apps {
		a := &c.Apps[i]
		if a.Name == "" {
			a.Name = a.Key
		}
		if a.OpenPath == "" {
			a.OpenPath = "/"
		}
		if a.Scheme == "" {
			a.Scheme = "http"
		}
		if a.Hostname == "" {
			return fail(*a, "hostname", "missing")
		}
		for field, v := range map[string]string{"key": a.Key, "name": a.Name, "hostname": a.Hostname, "open_path": a.OpenPath} {
			if !printable(v) {
				return fail(*a, field, fmt.Sprintf("%q has invalid UTF-8 or control characters", v))
			}
		}
		if strings.ContainsAny(a.Hostname, "/ \t{}") {
			return fail(*a, "hostname", fmt.Sprintf("%q is not a host name", a.Hostname))
		}
		if !strings.HasPrefix(a.OpenPath, "/") || strings.ContainsAny(a.OpenPath, " \t\r\n") {
			return fail(*a, "open_path", fmt.Sprintf("%q must be a path starting with /", a.OpenPath))
		}
		if a.ExternalPort == 0 {
			return fail(*a, "external_port", "missing")
		}
		if a.InternalPort == 0 {
			return fail(*a, "internal_port", "missing")
		}
		if names[a.Key] {
			return fail(*a, "", "defined twice")
		}
		names[a.Key] = true
		// Only the portal's own entry gets the front's secret (its
		// handlers trust it): a second entry claiming the name would
		// receive it.
		if a.IsPortal() {
			if portal != nil {
				return fail(*a, "name", fmt.Sprintf("%q is the portal's own entry, already defined by app %q: rename this app", PortalAppName, portal.Key))
			}
			portal = a
		}
	}
	listeners := map[int]App{} // external port → proxied app
	for _, a := range c.Apps {
		if !a.Proxied() {
			continue
		}
		if other, ok := listeners[a.ExternalPort]; ok && other.Upstream() != a.Upstream() {
			return fail(a, "external_port", fmt.Sprintf("%d is already proxied to %s by app %q; one port cannot proxy to two targets", a.ExternalPort, other.Upstream(), other.Key))
		}
		listeners[a.ExternalPort] = a
	}
	for _, a := range c.Apps {
		other, ok := listeners[a.InternalPort]
		if !ok || !isLocal(a.Hostname) {
			continue
		}
		if !a.Proxied() && a.ExternalPort == other.ExternalPort {
			continue // a link into the proxied app's port
		}
		return fail(a, "internal_port", fmt.Sprintf("%d is the external port of app %q, which the portal listens on", a.InternalPort, other.Key))
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters,
// including the bidirectional controls (U+202E…) that make a name display
// as something else than it is, and zero-width characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || invisible(r) {
			return false
		}
	}
	return true
}

// invisible: the zero-width characters (U+200B…U+200D, U+2060, U+FEFF)
// that make two names look the same, "Instance\u200bPortal" the portal's.
func invisible(r rune) bool {
	return r >= 0x200b && r <= 0x200d || r == 0x2060 || r == 0xfeff
}

// isLocal reports whether an app host is this machine, where its internal
// port would collide with a port Caddy listens on.
func isLocal(host string) bool {
	switch strings.ToLower(host) {
	case "localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0":
		return true
	}
	return false
}
