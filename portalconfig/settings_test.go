package portalconfig

import (
	"strings"
	"testing"
	"time"
)

func TestSettingsDefaults(t *testing.T) {
	s, err := SettingsFromEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.EnableAuth || s.WebUsername != "vastai" || s.EnableHTTPS || !s.Compression || s.FlushInterval != -1 ||
		s.TunnelProtocol != "http2" || !s.DefaultTunnels || s.CertFile != DefaultCertFile || s.KeyFile != DefaultKeyFile ||
		s.LogDir != DefaultLogDir || s.StateDir != DefaultStateDir ||
		s.CloudflaredBin != "cloudflared" || s.AdminListen != DefaultAdminListen || s.CookieName() != "_auth_token" {
		t.Errorf("defaults wrong: %+v", s)
	}
	if !s.Published(1234) {
		t.Error("without VAST_TCP_PORT_* every port is exposed")
	}
}

func TestSettingsFromEnv(t *testing.T) {
	env := Environ{
		"ENABLE_AUTH":                "false",
		"WEB_USERNAME":               "alice",
		"WEB_PASSWORD":               "secret",
		"AUTH_EXCLUDE":               "8080, 7860",
		"VAST_CONTAINERLABEL":        "C.42",
		"PUBLIC_IPADDR":              "203.0.113.9",
		"ENABLE_HTTPS":               "true",
		"INSTANCE_CERT":              "/tmp/c.pem",
		"CADDY_ENABLE_COMPRESSION":   "no",
		"CADDY_FLUSH_INTERVAL":       "100ms",
		"CADDY_CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
		"CADDY_HEADER_UP_LOCALHOST":  "18384,18080",
		"CF_TUNNEL_TOKEN":            "tok",
		"PORTAL_DEFAULT_TUNNELS":     "0",
		"PORTAL_ADMIN_LISTEN":        "off",
	}
	for k, v := range map[string]string{"VAST_TCP_PORT_8080": "40123", "VAST_TCP_PORT_22": "40022", "VAST_TCP_PORT_FOO": "1", "OTHER": "1"} {
		env[k] = v
	}
	s, err := SettingsFromEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	if s.EnableAuth || s.WebUsername != "alice" || !s.AuthExclude[8080] || !s.AuthExclude[7860] ||
		s.CookieName() != "C.42_auth_token" || !s.EnableHTTPS || s.CertFile != "/tmp/c.pem" || s.Compression ||
		s.FlushInterval != 100*time.Millisecond || len(s.CORSOrigins) != 2 || !s.HostLocalhost(18384) || s.HostLocalhost(1) ||
		!s.HasCFTunnelToken || s.DefaultTunnels || s.AdminListen != "off" {
		t.Errorf("settings wrong: %+v", s)
	}
	if s.PublicPorts[8080] != 40123 || s.PublicPorts[22] != 40022 || len(s.PublicPorts) != 2 {
		t.Errorf("public ports = %v", s.PublicPorts)
	}
	if !s.Published(8080) || s.Published(1111) {
		t.Error("with VAST_TCP_PORT_* only mapped ports are exposed")
	}
	if s.AuthFor(9999) {
		t.Error("ENABLE_AUTH=false must disable auth everywhere")
	}
}

func TestSettingsErrorsNameTheVariable(t *testing.T) {
	tests := map[string]map[string]string{
		"ENABLE_AUTH":               {"ENABLE_AUTH": "maybe"},
		"AUTH_EXCLUDE":              {"AUTH_EXCLUDE": "80,abc"},
		"CADDY_FLUSH_INTERVAL":      {"CADDY_FLUSH_INTERVAL": "soon"},
		"CADDY_HEADER_UP_LOCALHOST": {"CADDY_HEADER_UP_LOCALHOST": "yes please"},
		`SUPERVISOR_SOCKET="run/supervisor.sock": want an absolute path`: {"SUPERVISOR_SOCKET": "run/supervisor.sock"},
		`PORTAL_SKIP_DIR="skip": want an absolute path`:                  {"PORTAL_SKIP_DIR": "skip"},
		`PROVISIONING_FAILED="./f": want an absolute path`:               {"PROVISIONING_FAILED": "./f"},
	}
	for want, env := range tests {
		_, err := SettingsFromEnv(env)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: err = %v, want it to name %s", env, err, want)
		}
	}
	_, err := SettingsFromEnv(Environ{"VAST_TCP_PORT_8080": "notaport"})
	if err == nil || !strings.Contains(err.Error(), "VAST_TCP_PORT_8080") {
		t.Errorf("bad mapping: %v", err)
	}
}

func TestHeaderUpLocalhostTrue(t *testing.T) {
	s, err := SettingsFromEnv(Environ{"CADDY_HEADER_UP_LOCALHOST": "true"})
	if err != nil || !s.HostLocalhost(1) || !s.HostLocalhost(65535) {
		t.Errorf("true must apply to every port: %v %+v", err, s)
	}
}

func TestFlushInterval(t *testing.T) {
	for in, want := range map[string]time.Duration{"-1": -1, "-5": -1, "0": 0, "250": 250 * time.Millisecond, "2s": 2 * time.Second} {
		got, err := parseFlushInterval(in)
		if err != nil || got != want {
			t.Errorf("%q = %v, %v; want %v", in, got, err, want)
		}
	}
}

// CADDY_CORS_ALLOWED_ORIGINS holds exact origins or "*" alone; a trailing
// "*" was a prefix match in Caddy's header matcher (issue 20).
func TestCORSOriginsAreExact(t *testing.T) {
	good := []string{"*", "https://a.example", "http://trusted.example:8443", "http://[::1]:3000", "http://127.0.0.1"}
	bad := []string{"http://trusted.example*", "*.example", "https://*.example", "https://a.example/", "https://a.example/path",
		"a.example", "ftp://a.example", "https://", "https://a.example:0", "https://a.example:x", "https://u@a.example",
		"https://a.exämple", "https://a.example?x"}
	for _, o := range good {
		if err := checkOrigin(o); err != nil {
			t.Errorf("%q refused: %v", o, err)
		}
	}
	for _, o := range bad {
		if err := checkOrigin(o); err == nil {
			t.Errorf("%q accepted", o)
		}
	}
	_, err := SettingsFromEnv(Environ{"CADDY_CORS_ALLOWED_ORIGINS": "https://ok.example,http://trusted.example*"})
	if err == nil || !strings.Contains(err.Error(), `CADDY_CORS_ALLOWED_ORIGINS: "http://trusted.example*": a wildcard is allowed only as the whole entry`) {
		t.Errorf("err = %v", err)
	}
}

func FuzzCheckOrigin(f *testing.F) {
	for _, s := range []string{"*", "https://a.example", "http://trusted.example*", "http://[::1]:3000", "https://a.example/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, o string) {
		if checkOrigin(o) != nil {
			return
		}
		// What is accepted is "*" or an origin without wildcard, path,
		// credentials or spaces: exactly what a browser's Origin can be.
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			t.Fatalf("accepted %q", o)
		}
		if o != "*" && strings.ContainsAny(strings.SplitN(o, "://", 2)[1], "*/?#@ \t\n\\") {
			t.Fatalf("accepted %q", o)
		}
	})
}
