package portalconfig

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Default paths. Each has an environment override so that tests (and odd
// images) can run everything inside a temporary directory.
const (
	DefaultCertFile    = "/etc/instance.crt"
	DefaultKeyFile     = "/etc/instance.key"
	DefaultLogDir      = "/var/log/portal"
	DefaultStateDir    = "/var/lib/portal"
	DefaultWebUsername = "vastai"
	DefaultAdminListen = "localhost:2019"
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
	CORSOrigins   []string
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
}

// Lookup reads one environment variable; os.LookupEnv fits.
type Lookup func(key string) (string, bool)

// MapLookup adapts a map (tests, golden files) to Lookup.
func MapLookup(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// SettingsFromEnv reads the settings. environ is the full environment
// ("K=V" strings, as os.Environ returns) and is used only to find the
// VAST_TCP_PORT_* family. An unparsable value is an error naming the variable.
func SettingsFromEnv(get Lookup, environ []string) (Settings, error) {
	s := Settings{
		AuthExclude:            map[int]bool{},
		PublicPorts:            map[int]int{},
		HeaderUpLocalhostPorts: map[int]bool{},
	}
	str := func(k, def string) string {
		if v, ok := get(k); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
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
	present := func(k string) bool { v, ok := get(k); return ok && v != "" }

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

	s.CORSOrigins = splitList(str("CADDY_CORS_ALLOWED_ORIGINS", ""))

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

	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "VAST_TCP_PORT_") {
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

// Exposed reports whether Caddy listens on the external port p: when any
// VAST_TCP_PORT_* mapping exists only mapped ports are exposed (the
// reference's rule); without any (not on Vast.ai, or a laptop) all are.
func (s *Settings) Exposed(p int) bool {
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
