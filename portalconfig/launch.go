package portalconfig

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// LaunchMode is how the platform started the container, which decides who
// serves Jupyter. Vast.ai writes /.launch for its own launch modes; without
// it the image's entrypoint is in charge.
type LaunchMode string

const (
	// LaunchEntrypoint: no /.launch. The image's supervisor runs Jupyter
	// behind the portal.
	LaunchEntrypoint LaunchMode = "entrypoint"
	// LaunchJupyter: /.launch names jupyter. The platform runs Jupyter on
	// the Jupyter port itself, with TLS, so the portal only links to it.
	LaunchJupyter LaunchMode = "jupyter"
	// LaunchSSH: /.launch without jupyter (SSH or Args), or a Jupyter launch
	// with JUPYTER_OVERRIDE=true. Jupyter is not wanted unless overridden.
	LaunchSSH LaunchMode = "ssh"
)

// Launch-mode defaults: the ports of the reference's rules.
const (
	// DefaultJupyterPort is the external port Jupyter owns on the platform.
	DefaultJupyterPort = 8080
	// DefaultJupyterInternalPort is where the image's own Jupyter listens.
	DefaultJupyterInternalPort = 18080
	// JupyterTerminalPath is the open path of the "Jupyter Terminal" link.
	JupyterTerminalPath = "/terminals/1"
)

// LaunchInput is everything the launch rules read. LaunchInputFromEnv fills
// it from the environment; the caller adds the /.launch file.
type LaunchInput struct {
	// PortalConfig is PORTAL_CONFIG as the container received it.
	PortalConfig string
	// LaunchFile is the content of /.launch; HasLaunchFile says whether the
	// file exists (an empty file is still a launch file).
	LaunchFile    string
	HasLaunchFile bool
	// JupyterPortMapped: VAST_TCP_PORT_<JupyterPort> is set, i.e. the
	// platform maps the Jupyter port to the outside.
	JupyterPortMapped bool
	// JupyterOverride is JUPYTER_OVERRIDE=true: keep Jupyter as configured
	// and let the image run it, whatever /.launch says.
	JupyterOverride bool
	// ForceJupyter is false only for FORCE_JUPYTER=false: do not add
	// Jupyter back in entrypoint mode.
	ForceJupyter bool
	// JupyterPort is the external Jupyter port (PORTAL_JUPYTER_PORT, 8080);
	// JupyterInternalPort the image's Jupyter (JUPYTER_PORT, 18080).
	JupyterPort         int
	JupyterInternalPort int
}

// LaunchInputFromEnv reads the launch rules' variables. An unparsable port
// is an error naming the variable.
func LaunchInputFromEnv(env Environ) (LaunchInput, error) {
	val := func(k string) string { return env.Get(k, "") }
	in := LaunchInput{
		PortalConfig:        val(PortalConfigVar),
		JupyterOverride:     strings.EqualFold(val("JUPYTER_OVERRIDE"), "true"),
		ForceJupyter:        !strings.EqualFold(val("FORCE_JUPYTER"), "false"),
		JupyterPort:         DefaultJupyterPort,
		JupyterInternalPort: DefaultJupyterInternalPort,
	}
	for k, dst := range map[string]*int{"PORTAL_JUPYTER_PORT": &in.JupyterPort, "JUPYTER_PORT": &in.JupyterInternalPort} {
		if v := val(k); v != "" {
			p, err := parsePort(v)
			if err != nil {
				return in, fmt.Errorf("%s=%q: %v", k, v, err)
			}
			*dst = p
		}
	}
	in.JupyterPortMapped = val("VAST_TCP_PORT_"+strconv.Itoa(in.JupyterPort)) != ""
	return in, nil
}

// Launch is the result of the launch rules.
type Launch struct {
	Mode LaunchMode
	// PortalConfig is the adjusted PORTAL_CONFIG. Entries the rules did not
	// touch keep their original text, unparsable ones included (the adapter
	// reports those).
	PortalConfig string
	// HTTPSLinks names the link-only apps whose target serves TLS itself
	// (Jupyter in Jupyter mode): their links must be https://.
	HTTPSLinks []string
	// Changes says what the rules did and why, one line each.
	Changes []string
}

// launchEntry is one `|`-separated entry of PORTAL_CONFIG.
type launchEntry struct {
	raw     string
	app     App
	parsed  bool
	changed bool
	https   bool
}

func (e *launchEntry) text() string {
	if !e.changed {
		return e.raw
	}
	a := e.app
	s := fmt.Sprintf("%s:%d:%d:%s", a.Hostname, a.ExternalPort, a.InternalPort, a.OpenPath)
	if a.Name != "" {
		s += ":" + a.Name
	}
	return s
}

// label names the entry in messages.
func (e *launchEntry) label() string {
	if e.parsed && e.app.Name != "" {
		return e.app.Name
	}
	return strconv.Quote(e.raw)
}

// isJupyter matches the entries the reference's rules treat as Jupyter: a
// name containing "jupyter" in any case ("Jupyter", "Jupyter Terminal").
func (e *launchEntry) isJupyter() bool {
	return e.parsed && strings.Contains(strings.ToLower(e.app.Name), "jupyter")
}

// ApplyLaunch applies the reference image's launch-mode rules to
// PORTAL_CONFIG, with one addition (rule 5). J is the Jupyter port (8080), I
// the image's Jupyter port (18080):
//
//  1. Mode: no /.launch is entrypoint mode; a /.launch naming jupyter is
//     Jupyter mode unless JUPYTER_OVERRIDE=true; any other is SSH mode.
//  2. Jupyter entries are removed when J is not mapped (no VAST_TCP_PORT_J),
//     and in SSH mode unless JUPYTER_OVERRIDE=true.
//  3. Entrypoint mode with J mapped and no Jupyter entry (unless
//     FORCE_JUPYTER=false): "Jupyter" J:I:/ and "Jupyter Terminal"
//     J:J:/terminals/1 are added.
//  4. Jupyter mode: the platform's Jupyter serves J itself, so an entry
//     proxying J becomes a link (internal = J), and every link on J is
//     https://, since that Jupyter serves TLS.
//  5. When the image runs Jupyter (entrypoint mode, or an override) but no
//     entry proxies J, the Jupyter entry linking to J becomes the proxy
//     J:I. Without it the seed's default (Jupyter J:J as a link) would link
//     to a port nobody serves.
//
// The rules are idempotent: applying them to their own output changes
// nothing, so a restart that re-reads the adjusted PORTAL_CONFIG from
// /etc/environment gets the same apps.
func ApplyLaunch(in LaunchInput) Launch {
	j, internal := in.JupyterPort, in.JupyterInternalPort
	if j == 0 {
		j = DefaultJupyterPort
	}
	if internal == 0 {
		internal = DefaultJupyterInternalPort
	}
	out := Launch{Mode: LaunchEntrypoint}
	switch {
	case !in.HasLaunchFile:
	case strings.Contains(strings.ToLower(in.LaunchFile), "jupyter") && !in.JupyterOverride:
		out.Mode = LaunchJupyter
	default:
		out.Mode = LaunchSSH
	}
	note := func(format string, args ...any) { out.Changes = append(out.Changes, fmt.Sprintf(format, args...)) }

	var entries []*launchEntry
	for _, raw := range strings.Split(in.PortalConfig, "|") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		e := &launchEntry{raw: raw}
		if cfg, err := ParsePortalConfig(raw); err == nil && len(cfg.Apps) == 1 {
			e.app, e.parsed = cfg.Apps[0], true
			if e.app.OpenPath == "" {
				e.app.OpenPath = "/"
			}
		}
		entries = append(entries, e)
	}
	hasJupyter := func() bool {
		for _, e := range entries {
			if e.isJupyter() {
				return true
			}
		}
		return false
	}

	// Rule 2.
	var why string
	switch {
	case !in.JupyterPortMapped:
		why = fmt.Sprintf("port %d is not mapped (no VAST_TCP_PORT_%d)", j, j)
	case out.Mode == LaunchSSH && !in.JupyterOverride:
		why = "SSH/Args launch mode (/.launch without jupyter; JUPYTER_OVERRIDE=true keeps it)"
	}
	if why != "" && hasJupyter() {
		kept := entries[:0]
		var removed []string
		for _, e := range entries {
			if e.isJupyter() {
				removed = append(removed, e.label())
				continue
			}
			kept = append(kept, e)
		}
		entries = kept
		note("removed %s: %s", strings.Join(removed, ", "), why)
	}

	// Rule 3.
	if out.Mode == LaunchEntrypoint && in.JupyterPortMapped && in.ForceJupyter && !hasJupyter() {
		entries = append(entries,
			&launchEntry{changed: true, parsed: true, app: App{Hostname: "localhost", ExternalPort: j, InternalPort: internal, OpenPath: "/", Name: "Jupyter"}},
			&launchEntry{changed: true, parsed: true, app: App{Hostname: "localhost", ExternalPort: j, InternalPort: j, OpenPath: JupyterTerminalPath, Name: "Jupyter Terminal"}},
		)
		note("added Jupyter and Jupyter Terminal on port %d: entrypoint mode with port %d mapped (FORCE_JUPYTER=false leaves them out)", j, j)
	}

	switch out.Mode {
	case LaunchJupyter: // Rule 4.
		for _, e := range entries {
			if !e.parsed || e.app.ExternalPort != j {
				continue
			}
			if e.app.Proxied() {
				e.app.InternalPort, e.changed = j, true
				note("%s: port %d is served by the platform's Jupyter (Jupyter launch mode): a link, not a proxy", e.label(), j)
			}
			e.https = true
		}
	default: // Rule 5.
		proxied := false
		var link *launchEntry
		for _, e := range entries {
			if !e.parsed || e.app.ExternalPort != j {
				continue
			}
			if e.app.Proxied() {
				proxied = true
			} else if e.isJupyter() && (link == nil || strings.EqualFold(e.app.Name, "Jupyter")) &&
				!strings.HasPrefix(e.app.OpenPath, JupyterTerminalPath) {
				link = e
			}
		}
		if !proxied && link != nil {
			link.app.InternalPort, link.changed = internal, true
			note("%s: the image runs Jupyter on %d in %s mode: port %d proxies to it", link.label(), internal, out.Mode, j)
		}
	}

	texts := make([]string, len(entries))
	for i, e := range entries {
		texts[i] = e.text()
		if e.https {
			// The name portal.yaml will carry: ParsePortalConfig keys an
			// unnamed entry by its position.
			name := e.app.Name
			if name == "" {
				name = "entry " + strconv.Itoa(i+1)
			}
			out.HTTPSLinks = append(out.HTTPSLinks, name)
		}
	}
	out.PortalConfig = strings.Join(texts, "|")
	return out
}

// Config parses and validates the adjusted PORTAL_CONFIG.
func (l Launch) Config() (*Config, error) {
	cfg, err := ParsePortalConfig(l.PortalConfig)
	if err != nil {
		return nil, err
	}
	if len(cfg.Apps) == 0 {
		return nil, fmt.Errorf("%s is empty: nothing to write", PortalConfigVar)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// YAML renders the adjusted apps as portal.yaml, with `scheme: https` on
// the HTTPS links.
func (l Launch) YAML() ([]byte, error) {
	cfg, err := l.Config()
	if err != nil {
		return nil, err
	}
	for i := range cfg.Apps {
		if slices.Contains(l.HTTPSLinks, cfg.Apps[i].Name) {
			cfg.Apps[i].Scheme = "https"
		}
	}
	return cfg.MarshalYAML()
}
