package portalconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/instanceportal/portal/provstatus"
)

// Default paths. Each has an environment override so that tests (and odd
// images) can run everything inside a temporary directory. The boot's bash
// declares the same defaults in rootfs/opt/supervisor-scripts/utils/paths.sh;
// TestBootPathDefaults holds the two equal.
const (
	// DefaultPortalYAML is the portal configuration (PORTAL_YAML).
	DefaultPortalYAML = "/etc/portal.yaml"
	// DefaultLaunchFile is where the platform describes its launch mode
	// (LAUNCH_FILE).
	DefaultLaunchFile  = "/.launch"
	DefaultCertFile    = "/etc/instance.crt"
	DefaultKeyFile     = "/etc/instance.key"
	DefaultLogDir      = "/var/log/portal"
	DefaultStateDir    = "/var/lib/portal"
	DefaultWebUsername = "vastai"
	// DefaultAdminListen is an address, not "localhost": resolving a name
	// needs /etc/hosts, which a bare container may not have yet.
	DefaultAdminListen = "127.0.0.1:2019"
	// DefaultSupervisorSocket is where supervisord listens (the image's
	// supervisord.conf).
	DefaultSupervisorSocket = "/var/run/supervisor.sock"
	// DefaultSkipDir holds a marker per program that exit_portal.sh chose
	// not to start because its app is not in portal.yaml.
	DefaultSkipDir = "/tmp/supervisor-skip"
	// DefaultLinksFile lists a template's own Tools & Help links.
	DefaultLinksFile = "/etc/portal-links.yaml"
)

// Settings is everything the environment contributes to the portal. It holds
// no secret: WEB_PASSWORD, OPEN_BUTTON_TOKEN and CF_TUNNEL_TOKEN are only
// noted as present, and reach the modules as {env.…} placeholders.
type Settings struct {
	EnableAuth  bool
	WebUsername string
	// AuthExclude holds external ports served without authentication.
	AuthExclude map[int]bool
	// ContainerLabel is VAST_CONTAINERLABEL; the cookie is <label>_auth_token.
	ContainerLabel string
	// PublicPorts maps a container port p (an app's external_port) to the
	// host's public port, from VAST_TCP_PORT_<p>.
	PublicPorts map[int]int
	PublicIP    string

	EnableHTTPS bool
	CertFile    string
	KeyFile     string

	Compression bool
	// FlushInterval is passed to reverse_proxy; negative means flush at once.
	FlushInterval time.Duration
	// CORSOrigins is CADDY_CORS_ALLOWED_ORIGINS: exact origins
	// (scheme://host[:port], compared as written) or "*" alone. It applies
	// to the apps' ports only, never to the portal's own (its APIs change
	// state and serve logs).
	CORSOrigins []string
	// HeaderUpLocalhostAll / HeaderUpLocalhostPorts come from
	// CADDY_HEADER_UP_LOCALHOST: "true" or a list of internal ports.
	HeaderUpLocalhostAll   bool
	HeaderUpLocalhostPorts map[int]bool

	HasCFTunnelToken bool
	TunnelProtocol   string
	DefaultTunnels   bool

	LogDir         string
	StateDir       string
	CloudflaredBin string
	Workspace      string

	// AdminListen is the admin endpoint (PORTAL_ADMIN_LISTEN); "off" disables it.
	AdminListen string
	// AccessLog turns on per-request access logs (PORTAL_ACCESS_LOG). Off by
	// default: building each entry costs about a third of the proxy's CPU
	// per request (bench/proxy.sh), and the reference logged none.
	AccessLog bool

	// SupervisorSocket is supervisord's XML-RPC unix socket
	// (SUPERVISOR_SOCKET), for process control.
	SupervisorSocket string
	// Unstoppable lists programs the dashboard may not stop or restart
	// (PORTAL_UNSTOPPABLE, comma-separated); caddy is always one.
	Unstoppable []string
	// SkipDir is where exit_portal.sh leaves a marker per program it did
	// not start (PORTAL_SKIP_DIR).
	SkipDir string
	// LinksFile is the template's Tools & Help links (PORTAL_LINKS_FILE).
	LinksFile string
	// ProvisioningLock, ProvisioningDone and ProvisioningFailed are the
	// entrypoint's provisioning markers (PROVISIONING_LOCK,
	// PROVISIONING_DONE, PROVISIONING_FAILED); empty means the image's
	// defaults, which the bootstatus package owns.
	ProvisioningLock, ProvisioningDone, ProvisioningFailed string
	// ProvisionerStateDir is the provisioner's state directory, where
	// /api/provisioning reads its progress (provstatus.StateDirEnv); empty
	// means provstatus.DefaultStateDir.
	ProvisionerStateDir string
	// Links is PORTAL_LINKS ("Label|URL|Description,…"), appended after
	// the built-in cards. Not parsed here: the links package owns the form.
	Links string
}

// Environ is a snapshot of the environment: the adapter and the commands
// take one, so that what they build depends on their arguments only.
type Environ map[string]string

// OSEnviron snapshots the process environment.
func OSEnviron() Environ {
	env := Environ{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// Get is the trimmed value of k, or def when k is unset or blank.
func (e Environ) Get(k, def string) string {
	if v := strings.TrimSpace(e[k]); v != "" {
		return v
	}
	return def
}

// SettingsFromEnv reads the settings from the environment. An unparsable
// value is an error naming the variable.
func SettingsFromEnv(env Environ) (Settings, error) {
	s := Settings{
		AuthExclude:            map[int]bool{},
		PublicPorts:            map[int]int{},
		HeaderUpLocalhostPorts: map[int]bool{},
	}
	str := env.Get
	var errs []string
	boolean := func(k string, def bool) bool {
		v := str(k, "")
		if v == "" {
			return def
		}
		b, err := parseBool(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v", k, v, err))
			return def
		}
		return b
	}
	present := func(k string) bool { return env[k] != "" }
	// absolute: a path the handlers open from wherever caddy runs; a
	// relative one would depend on its working directory, so it is refused
	// here, naming the variable, rather than by a handler's Provision.
	absolute := func(k, def string) string {
		v := str(k, def)
		if v != "" && !filepath.IsAbs(v) {
			errs = append(errs, fmt.Sprintf("%s=%q: want an absolute path", k, v))
			return def
		}
		return v
	}

	s.EnableAuth = boolean("ENABLE_AUTH", true)
	s.WebUsername = str("WEB_USERNAME", DefaultWebUsername)
	s.ContainerLabel = str("VAST_CONTAINERLABEL", "")
	s.PublicIP = str("PUBLIC_IPADDR", "")
	s.EnableHTTPS = boolean("ENABLE_HTTPS", false)
	s.CertFile = str("INSTANCE_CERT", DefaultCertFile)
	s.KeyFile = str("INSTANCE_KEY", DefaultKeyFile)
	s.Compression = boolean("CADDY_ENABLE_COMPRESSION", true)
	s.HasCFTunnelToken = present("CF_TUNNEL_TOKEN")
	s.TunnelProtocol = str("TUNNEL_TRANSPORT_PROTOCOL", "http2")
	s.DefaultTunnels = boolean("PORTAL_DEFAULT_TUNNELS", true)
	s.LogDir = str("PORTAL_LOG_DIR", DefaultLogDir)
	s.StateDir = str("PORTAL_STATE_DIR", DefaultStateDir)
	s.CloudflaredBin = str("CLOUDFLARED_BIN", "cloudflared")
	s.Workspace = str("WORKSPACE", "")
	s.AdminListen = str("PORTAL_ADMIN_LISTEN", DefaultAdminListen)
	s.AccessLog = boolean("PORTAL_ACCESS_LOG", false)
	s.SupervisorSocket = absolute("SUPERVISOR_SOCKET", DefaultSupervisorSocket)
	s.Unstoppable = splitList(str("PORTAL_UNSTOPPABLE", ""))
	s.SkipDir = absolute("PORTAL_SKIP_DIR", DefaultSkipDir)
	s.LinksFile = absolute("PORTAL_LINKS_FILE", DefaultLinksFile)
	s.Links = str("PORTAL_LINKS", "")
	s.ProvisioningLock = absolute("PROVISIONING_LOCK", "")
	s.ProvisioningDone = absolute("PROVISIONING_DONE", "")
	s.ProvisioningFailed = absolute("PROVISIONING_FAILED", "")
	s.ProvisionerStateDir = absolute(provstatus.StateDirEnv, "")

	for _, p := range splitList(str("AUTH_EXCLUDE", "")) {
		n, err := parsePort(p)
		if err != nil {
			errs = append(errs, fmt.Sprintf("AUTH_EXCLUDE: %q: %v", p, err))
			continue
		}
		s.AuthExclude[n] = true
	}

	fi := str("CADDY_FLUSH_INTERVAL", "-1")
	if d, err := parseFlushInterval(fi); err != nil {
		errs = append(errs, fmt.Sprintf("CADDY_FLUSH_INTERVAL=%q: %v", fi, err))
		s.FlushInterval = -1
	} else {
		s.FlushInterval = d
	}

	for _, o := range splitList(str("CADDY_CORS_ALLOWED_ORIGINS", "")) {
		if err := checkOrigin(o); err != nil {
			errs = append(errs, fmt.Sprintf("CADDY_CORS_ALLOWED_ORIGINS: %q: %v", o, err))
			continue
		}
		s.CORSOrigins = append(s.CORSOrigins, o)
	}

	hul := str("CADDY_HEADER_UP_LOCALHOST", "")
	if b, err := parseBool(hul); hul != "" && err == nil {
		s.HeaderUpLocalhostAll = b
	} else {
		for _, p := range splitList(hul) {
			n, err := parsePort(p)
			if err != nil {
				errs = append(errs, fmt.Sprintf("CADDY_HEADER_UP_LOCALHOST: %q: want true, false or a list of ports", p))
				continue
			}
			s.HeaderUpLocalhostPorts[n] = true
		}
	}

	for k, v := range env {
		if !strings.HasPrefix(k, "VAST_TCP_PORT_") {
			continue
		}
		p, err := parsePort(strings.TrimPrefix(k, "VAST_TCP_PORT_"))
		if err != nil {
			continue // other VAST_TCP_PORT_* spellings are not port mappings
		}
		pub, err := parsePort(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v", k, v, err))
			continue
		}
		s.PublicPorts[p] = pub
	}

	if len(errs) > 0 {
		sort.Strings(errs)
		return s, fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return s, nil
}

// Published reports whether the external port p is reachable from outside
// the instance, so that the portal should listen on it: when any
// VAST_TCP_PORT_* mapping exists only mapped ports are (the rule of Vast.ai's
// base image); without any (not on Vast.ai, or a laptop) all are.
func (s *Settings) Published(p int) bool {
	if len(s.PublicPorts) == 0 {
		return true
	}
	_, ok := s.PublicPorts[p]
	return ok
}

// AuthFor reports whether requests to the external port p must authenticate.
func (s *Settings) AuthFor(p int) bool { return s.EnableAuth && !s.AuthExclude[p] }

// HostLocalhost reports whether requests proxied to internal port p get
// Host: localhost:<p> (apps such as Syncthing refuse foreign Host headers).
func (s *Settings) HostLocalhost(p int) bool {
	return s.HeaderUpLocalhostAll || s.HeaderUpLocalhostPorts[p]
}

// CookieName is the session cookie name, ${VAST_CONTAINERLABEL}_auth_token.
func (s *Settings) CookieName() string { return s.ContainerLabel + "_auth_token" }

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("want true or false")
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d outside 1-65535", n)
	}
	return n, nil
}

// parseFlushInterval accepts what the reference passed to Caddy's
// flush_interval: -1 (flush immediately), a duration such as "100ms", or a
// bare integer, taken as milliseconds.
func parseFlushInterval(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return -1, nil
		}
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("want -1 or a duration such as 100ms")
	}
	return d, nil
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// checkOrigin accepts what an Origin header can hold and a CORS list may
// name: "*" alone, or scheme://host[:port] with nothing else. Caddy's header
// matcher reads a leading or trailing "*" as a wildcard, so
// "http://trusted.example*" would admit "http://trusted.example.evil.com":
// such an entry is refused rather than read as a prefix.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	if strings.Contains(o, "*") {
		return fmt.Errorf("a wildcard is allowed only as the whole entry \"*\"; list each origin exactly")
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return fmt.Errorf("want an origin such as https://example.com (http or https, no path)")
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@\\ \t") {
		return fmt.Errorf("want an origin such as https://example.com (scheme, host and optional port only)")
	}
	host := rest
	if h, port, found := strings.Cut(rest, "]:"); found && strings.HasPrefix(rest, "[") {
		host = h + "]"
		if _, err := parsePort(port); err != nil {
			return fmt.Errorf("port: %v", err)
		}
	} else if !strings.HasPrefix(rest, "[") {
		if h, port, found := strings.Cut(rest, ":"); found {
			host = h
			if _, err := parsePort(port); err != nil || strings.TrimSpace(port) != port {
				return fmt.Errorf("port %q: want 1-65535", port)
			}
		}
	}
	if host == "" || host == "[]" {
		return fmt.Errorf("no host")
	}
	for _, r := range host {
		if r <= ' ' || r == 0x7f || r > 0x7e {
			return fmt.Errorf("the host must be ASCII (write an internationalised name in its xn-- form)")
		}
	}
	return nil
}
