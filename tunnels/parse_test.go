package tunnels

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// Lines as cloudflared prints them (console format, and --output json).
func TestQuickTunnelURLFromLine(t *testing.T) {
	cases := []struct {
		line, want string
	}{
		{"2024-05-01T10:00:01Z INF |  https://seasonal-shorts-invention-accessibility.trycloudflare.com                            |", "https://seasonal-shorts-invention-accessibility.trycloudflare.com"},
		{"2023-03-11T12:34:56Z INF |  https://abc-123.trycloudflare.com  |", "https://abc-123.trycloudflare.com"},
		{`{"level":"info","time":"2024-05-01T10:00:01Z","message":"|  https://gentle-river-c0de.trycloudflare.com  |"}`, "https://gentle-river-c0de.trycloudflare.com"},
		{"2024-05-01T10:00:01Z INF Requesting new quick Tunnel on trycloudflare.com...", ""},
		{"2024-05-01T10:00:01Z INF +--------------------------------------------------------------------------------------------+", ""},
		{`2024-05-01T10:00:01Z ERR failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": dial tcp`, ""},
		{"https://-bad-.trycloudflare.com", ""},
		{"http://plain.trycloudflare.com", ""},
		{"https://evil.trycloudflare.com.attacker.net", ""},
		{"https://UPPER.trycloudflare.com", ""},
	}
	for _, c := range cases {
		got, ok := quickTunnelURLFromLine(c.line)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("quickTunnelURLFromLine(%q) = %q, %v; want %q", c.line, got, ok, c.want)
		}
	}
}

func TestIsRateLimitLine(t *testing.T) {
	yes := []string{
		`2024-05-01T10:00:01Z ERR Error unmarshaling QuickTunnel response: error code: 1015 error="invalid character 'e' looking for beginning of value" status_code="429 Too Many Requests"`,
		"failed to unmarshal quick Tunnel: invalid character 'e' looking for beginning of value",
	}
	no := []string{
		"2024-05-01T10:00:01Z INF Requesting new quick Tunnel on trycloudflare.com...",
		`2024-05-01T10:00:01Z ERR failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": EOF`,
		"2024-05-01T10:00:01Z INF Registered tunnel connection connIndex=0",
	}
	for _, l := range yes {
		if !isRateLimitLine(l) {
			t.Errorf("not recognised as rate limit: %q", l)
		}
	}
	for _, l := range no {
		if isRateLimitLine(l) {
			t.Errorf("wrongly taken for a rate limit: %q", l)
		}
	}
}

func TestNormalizeTarget(t *testing.T) {
	ok := map[string]string{
		"http://localhost:8080":   "http://localhost:8080",
		"HTTP://LocalHost:8080/":  "http://localhost:8080",
		"https://127.0.0.1:1111":  "https://127.0.0.1:1111",
		"http://[::1]:3000":       "http://[::1]:3000",
		" http://localhost:1 ":    "http://localhost:1",
		"https://localhost:65535": "https://localhost:65535",
	}
	for in, want := range ok {
		got, err := NormalizeTarget(in)
		if err != nil || got != want {
			t.Errorf("NormalizeTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                              "empty",
		"localhost:8080":                "scheme",
		"ftp://localhost:21":            "scheme",
		"http://example.com:80":         "host must be",
		"http://10.0.0.1:80":            "host must be",
		"http://localhost.evil.com:80":  "host must be",
		"http://localhost":              "port is required",
		"http://localhost:0":            "port must be",
		"http://localhost:70000":        "port must be",
		"http://localhost:080":          "port must be",
		"http://user:pw@localhost:8080": "credentials",
		"http://localhost:8080/admin":   "no path",
		"http://localhost:8080/?a=1":    "no path",
		"http://localhost:8080#x":       "no path",
		"http:localhost:8080":           "missing host",
		"http://%zz:80":                 "not a URL",
	}
	for in, want := range bad {
		_, err := NormalizeTarget(in)
		if err == nil || !errors.Is(err, ErrInvalidTarget) || !strings.Contains(err.Error(), want) {
			t.Errorf("NormalizeTarget(%q) error = %v; want one mentioning %q", in, err, want)
		}
	}
}

func TestParseReady(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   bool
	}{
		{200, `{"status":200,"readyConnections":1,"connectorId":"x"}`, true},
		{200, `{"status":200,"readyConnections":0}`, false},
		{503, `{"status":503,"readyConnections":0}`, false},
		{200, `OK`, true},
		{404, ``, false},
	}
	for _, c := range cases {
		if got := parseReady(c.status, []byte(c.body)); got != c.want {
			t.Errorf("parseReady(%d, %s) = %v", c.status, c.body, got)
		}
	}
}

func TestParseQuickTunnel(t *testing.T) {
	cases := []struct {
		body, want string
		err        bool
	}{
		{`{"hostname":"amber-basin-cedar-delta.trycloudflare.com"}`, "https://amber-basin-cedar-delta.trycloudflare.com", false},
		{`{"hostname":"https://amber-basin.trycloudflare.com"}`, "https://amber-basin.trycloudflare.com", false},
		{`{"hostname":""}`, "", false},
		{`{"hostname":"evil.example.com"}`, "", true},
		{`{"hostname":"x.trycloudflare.com/../evil"}`, "", true},
		{`not json`, "", true},
	}
	for _, c := range cases {
		got, err := parseQuickTunnel([]byte(c.body))
		if got != c.want || (err != nil) != c.err {
			t.Errorf("parseQuickTunnel(%s) = %q, %v", c.body, got, err)
		}
	}
}

func TestParseIngress(t *testing.T) {
	body := `{"version":3,"config":{"ingress":[
		{"hostname":"jupyter.example.com","path":null,"service":"http://localhost:8080","originRequest":{}},
		{"hostname":"comfy.example.com","path":"^/api","service":"http://localhost:8188","originRequest":{}},
		{"service":"http_status:404","originRequest":{}}],"warp-routing":{"enabled":false},"originRequest":{}}}`
	got, err := parseIngress([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []IngressRule{
		{Hostname: "jupyter.example.com", Service: "http://localhost:8080"},
		{Hostname: "comfy.example.com", Path: "^/api", Service: "http://localhost:8188"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := parseIngress([]byte(`[`)); err == nil {
		t.Error("broken JSON accepted")
	}
}

func TestLineWriter(t *testing.T) {
	var lines []string
	w := &lineWriter{emit: func(l string) { lines = append(lines, l) }}
	for _, chunk := range []string{"one\r\ntw", "o\nthr", "ee"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	if strings.Join(lines, "|") != "one|two|three" {
		t.Fatalf("lines = %q", lines)
	}
	lines = nil
	_, _ = w.Write([]byte(strings.Repeat("x", maxLineLen+10)))
	w.Flush()
	if len(lines) != 2 || len(lines[0]) != maxLineLen {
		t.Fatalf("long line not split at the bound: %d lines", len(lines))
	}
}

func FuzzNormalizeTarget(f *testing.F) {
	for _, s := range []string{"http://localhost:8080", "https://[::1]:1/", "http://127.0.0.1:0", "http://localhost", "javascript:alert(1)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeTarget(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidTarget) {
				t.Fatalf("error not ErrInvalidTarget: %v", err)
			}
			return
		}
		// Accepted targets are canonical, loopback and carry a port.
		again, err := NormalizeTarget(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, out, again, err)
		}
		u, err := url.Parse(out)
		if err != nil || u.Port() == "" || u.Path != "" {
			t.Fatalf("bad canonical form %q", out)
		}
		switch u.Hostname() {
		case "localhost", "127.0.0.1", "::1":
		default:
			t.Fatalf("non-local host accepted: %q from %q", out, in)
		}
	})
}

func FuzzQuickTunnelURLFromLine(f *testing.F) {
	for _, s := range []string{
		"2024-05-01T10:00:01Z INF |  https://seasonal-shorts-invention.trycloudflare.com  |",
		"https://api.trycloudflare.com/tunnel", "https://a.trycloudflare.com.evil", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		u, ok := quickTunnelURLFromLine(line)
		if !ok {
			if u != "" {
				t.Fatal("URL without ok")
			}
			return
		}
		if !strings.Contains(line, u) || !strings.HasPrefix(u, "https://") || !strings.HasSuffix(u, ".trycloudflare.com") {
			t.Fatalf("bad URL %q from %q", u, line)
		}
		if _, err := parseQuickTunnel([]byte(`{"hostname":"` + strings.TrimPrefix(u, "https://") + `"}`)); err != nil {
			t.Fatalf("URL from a line refused by /quicktunnel parsing: %v", err)
		}
	})
}

func FuzzLineWriter(f *testing.F) {
	f.Add([]byte("a\r\nb\nc"), 3)
	f.Add([]byte("\n\n\n"), 1)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		var lines []string
		w := &lineWriter{emit: func(l string) { lines = append(lines, l) }}
		for i := 0; i < len(data); i += chunk {
			_, _ = w.Write(data[i:min(len(data), i+chunk)])
		}
		w.Flush()
		for _, l := range lines {
			if strings.ContainsAny(l, "\r\n") || len(l) > maxLineLen {
				t.Fatalf("bad line %q", l)
			}
		}
		// Nothing but \r is lost: the lines hold every other byte in order.
		want := strings.NewReplacer("\r", "", "\n", "").Replace(string(data))
		if strings.Join(lines, "") != want {
			t.Fatalf("content changed")
		}
	})
}
