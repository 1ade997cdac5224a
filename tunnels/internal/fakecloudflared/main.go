// Command fakecloudflared stands in for cloudflared in tests. It honours the
// contract the tunnels package relies on, checked against cloudflared's
// source (cmd/cloudflared/tunnel, metrics/):
//
//   - `cloudflared tunnel [flags] --url URL` runs a quick tunnel and
//     `cloudflared tunnel [flags] run` a named one whose token comes from
//     --token or TUNNEL_TOKEN. Flags: --no-autoupdate, --metrics ADDR,
//     --protocol/-p (auto|http2|quic), --url, --no-tls-verify, --loglevel,
//     --token; "--f v", "--f=v" and "-f v" forms; an unknown flag is
//     "Incorrect Usage" and exit status 1, as with urfave/cli.
//   - It logs to stderr in zerolog's console format, including the banner
//     box with the https://….trycloudflare.com URL, "Registered tunnel
//     connection", and on a 429 "failed to unmarshal quick Tunnel".
//   - The metrics server on exactly --metrics serves /ready (200
//     {"status":200,"readyConnections":1,"connectorId":…} once connected,
//     else 503), /quicktunnel ({"hostname":…}), /config (a named tunnel's
//     versioned ingress), /metrics and /healthcheck.
//   - SIGTERM/SIGINT: "Initiating graceful shutdown" and exit 0.
//
// Knobs (environment):
//
//	FAKE_CLOUDFLARED_STATE_DIR        counters for *_TIMES knobs (per target)
//	FAKE_CLOUDFLARED_FAIL_TIMES=N     the first N starts fail (exit 1)
//	FAKE_CLOUDFLARED_RATE_LIMIT_TIMES=N  the first N starts get the 429
//	FAKE_CLOUDFLARED_RATE_LIMIT=1     every start gets the 429
//	FAKE_CLOUDFLARED_DIE_AFTER=d      exit 1 after d
//	FAKE_CLOUDFLARED_READY_DELAY=d    the edge connection registers after d
//	FAKE_CLOUDFLARED_ANSWER_DELAY=d   every metrics answer is late by d
//	FAKE_CLOUDFLARED_NEVER_READY=1    /ready stays 503
//	FAKE_CLOUDFLARED_UNREADY_AFTER=d  the connection drops (503) after d
//	FAKE_CLOUDFLARED_NO_QUICKTUNNEL=1 no /quicktunnel endpoint (older builds)
//	FAKE_CLOUDFLARED_IGNORE_TERM=1    ignore SIGTERM (needs SIGKILL)
//	FAKE_CLOUDFLARED_CHILD=1          spawn a helper process that sleeps
//	FAKE_CLOUDFLARED_INGRESS=h=svc,…  a named tunnel's ingress rules
//	FAKE_CLOUDFLARED_EXPECT_TOKEN=t   refuse any other token
//	FAKE_CLOUDFLARED_RECORD=file      append {pid,args,token_in_env} per start
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if os.Getenv("FAKE_CLOUDFLARED_SLEEPER") == "1" {
		// The helper spawned by FAKE_CLOUDFLARED_CHILD: it ignores SIGTERM
		// like a stubborn grandchild would, and lives until killed.
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Hour)
		return
	}
	os.Exit(run(os.Args[1:]))
}

func logf(level, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339), level, fmt.Sprintf(format, a...))
}

type flags struct {
	noAutoupdate, noTLSVerify bool
	metrics, protocol, url    string
	loglevel, token           string
	run                       bool
}

var boolFlags = map[string]bool{"no-autoupdate": true, "no-tls-verify": true}
var stringFlags = map[string]bool{"metrics": true, "protocol": true, "p": true, "url": true, "loglevel": true, "token": true}

func parse(args []string) (flags, error) {
	f := flags{metrics: "localhost:", protocol: "auto", url: "http://localhost:8080", loglevel: "info"}
	if len(args) == 0 || args[0] != "tunnel" {
		return f, fmt.Errorf("want the tunnel command")
	}
	args = args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "run" && !f.run {
			f.run = true
			continue
		}
		if !strings.HasPrefix(a, "-") {
			return f, fmt.Errorf("unexpected argument %q", a)
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case boolFlags[name]:
			b := true
			if hasVal {
				var err error
				if b, err = strconv.ParseBool(val); err != nil {
					return f, fmt.Errorf("invalid boolean value %q for -%s", val, name)
				}
			}
			if name == "no-autoupdate" {
				f.noAutoupdate = b
			} else {
				f.noTLSVerify = b
			}
		case stringFlags[name]:
			if !hasVal {
				if i+1 >= len(args) {
					return f, fmt.Errorf("flag needs an argument: -%s", name)
				}
				i++
				val = args[i]
			}
			switch name {
			case "metrics":
				f.metrics = val
			case "protocol", "p":
				f.protocol = val
			case "url":
				f.url = val
			case "loglevel":
				f.loglevel = val
			case "token":
				f.token = val
			}
		default:
			return f, fmt.Errorf("flag provided but not defined: -%s", name)
		}
	}
	return f, nil
}

func envDuration(k string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(k))
	return d
}

// countStart increments and returns this target's start count.
func countStart(key string) int {
	dir := os.Getenv("FAKE_CLOUDFLARED_STATE_DIR")
	if dir == "" {
		return 1
	}
	sum := sha256.Sum256([]byte(key))
	p := filepath.Join(dir, "starts-"+hex.EncodeToString(sum[:8]))
	b, _ := os.ReadFile(p)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	_ = os.WriteFile(p, []byte(strconv.Itoa(n)), 0o644)
	return n
}

func record(args []string) {
	p := os.Getenv("FAKE_CLOUDFLARED_RECORD")
	if p == "" {
		return
	}
	_, tokenInEnv := os.LookupEnv("TUNNEL_TOKEN")
	line, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "args": args, "token_in_env": tokenInEnv})
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer fh.Close()
	_, _ = fh.Write(append(line, '\n'))
}

var words = []string{"amber", "basin", "cedar", "delta", "ember", "fjord", "grove", "harbor", "island", "jasper",
	"kettle", "lagoon", "meadow", "nectar", "orchid", "prairie", "quartz", "ridge", "summit", "timber", "valley", "willow"}

func randomHostname() string {
	parts := make([]string, 4)
	for i := range parts {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
		parts[i] = words[n.Int64()]
	}
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return strings.Join(parts, "-") + "-" + hex.EncodeToString(b) + ".trycloudflare.com"
}

func box(lines ...string) {
	w := 0
	for _, l := range lines {
		w = max(w, len(l))
	}
	border := "+" + strings.Repeat("-", w+4) + "+"
	logf("INF", "%s", border)
	for _, l := range lines {
		logf("INF", "|  %s%s  |", l, strings.Repeat(" ", w-len(l)))
	}
	logf("INF", "%s", border)
}

func run(args []string) int {
	f, err := parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Incorrect Usage: %v\n", err)
		return 1
	}
	record(args)
	switch f.protocol {
	case "auto", "http2", "quic":
	default:
		logf("ERR", "Unknown protocol %s, valid protocols are auto, http2 and quic", f.protocol)
		return 1
	}
	key := f.url
	if f.run {
		key = "named"
	}
	start := countStart(key)

	hostname := ""
	if f.run {
		token := f.token
		if token == "" {
			token = os.Getenv("TUNNEL_TOKEN")
		}
		if want := os.Getenv("FAKE_CLOUDFLARED_EXPECT_TOKEN"); token == "" || (want != "" && token != want) {
			logf("ERR", "Provided Tunnel token is not valid.")
			return 1
		}
		logf("INF", "Starting tunnel tunnelID=6ff42ae2-765d-4adf-8112-31c55c1551ef")
	} else {
		logf("INF", "Thank you for trying Cloudflare Tunnel. Doing so, without a Cloudflare account, is a quick way to experiment and try it out.")
		logf("INF", "Requesting new quick Tunnel on trycloudflare.com...")
		n, _ := strconv.Atoi(os.Getenv("FAKE_CLOUDFLARED_RATE_LIMIT_TIMES"))
		if os.Getenv("FAKE_CLOUDFLARED_RATE_LIMIT") == "1" || start <= n {
			logf("ERR", `Error unmarshaling QuickTunnel response: error code: 1015 error="invalid character 'e' looking for beginning of value" status_code="429 Too Many Requests"`)
			fmt.Fprintln(os.Stderr, "failed to unmarshal quick Tunnel: invalid character 'e' looking for beginning of value")
			return 1
		}
	}
	if n, _ := strconv.Atoi(os.Getenv("FAKE_CLOUDFLARED_FAIL_TIMES")); start <= n {
		logf("ERR", `failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": dial tcp: lookup api.trycloudflare.com: no such host`)
		return 1
	}
	if !f.run {
		hostname = randomHostname()
		box("Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):", "https://"+hostname)
	}

	l, err := net.Listen("tcp", f.metrics)
	if err != nil {
		logf("ERR", "Error opening metrics server listener error=%q", err.Error())
		return 1
	}
	logf("INF", "Starting metrics server on %s/metrics", l.Addr())
	began := time.Now()
	connected := func() bool {
		if os.Getenv("FAKE_CLOUDFLARED_NEVER_READY") == "1" || time.Since(began) < envDuration("FAKE_CLOUDFLARED_READY_DELAY") {
			return false
		}
		if d := envDuration("FAKE_CLOUDFLARED_UNREADY_AFTER"); d > 0 && time.Since(began) >= d {
			return false
		}
		return true
	}
	srv := &http.Server{Handler: metricsMux(f, hostname, connected), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()

	if os.Getenv("FAKE_CLOUDFLARED_CHILD") == "1" {
		self, _ := os.Executable()
		c := exec.Command(self)
		c.Env = append(os.Environ(), "FAKE_CLOUDFLARED_SLEEPER=1")
		if err := c.Start(); err == nil {
			logf("INF", "helper pid %d", c.Process.Pid)
		}
	}

	sigs := make(chan os.Signal, 2)
	if os.Getenv("FAKE_CLOUDFLARED_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}
	var die <-chan time.Time
	if d := envDuration("FAKE_CLOUDFLARED_DIE_AFTER"); d > 0 {
		die = time.After(d)
	}
	var announced atomic.Bool
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case s := <-sigs:
			logf("INF", "Initiating graceful shutdown due to signal %s ...", s)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
			return 0
		case <-die:
			logf("ERR", "Connection terminated error=\"fake cloudflared: FAKE_CLOUDFLARED_DIE_AFTER\" connIndex=0")
			logf("ERR", "no more connections active and exiting")
			return 1
		case <-tick.C:
			if connected() && !announced.Swap(true) {
				logf("INF", "Registered tunnel connection connIndex=0 connection=3782d772-4d6e-4b53-9fb5-a3d0d6c6f0a1 event=0 ip=198.41.192.7 location=ams08 protocol=%s", f.protocol)
			}
		}
	}
}

func metricsMux(f flags, hostname string, connected func() bool) http.Handler {
	late := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(envDuration("FAKE_CLOUDFLARED_ANSWER_DELAY"))
			h(w, r)
		}
	}
	jsonOut := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", late(func(w http.ResponseWriter, _ *http.Request) {
		if connected() {
			jsonOut(w, 200, map[string]any{"status": 200, "readyConnections": 1, "connectorId": "3782d772-4d6e-4b53-9fb5-a3d0d6c6f0a1"})
			return
		}
		jsonOut(w, 503, map[string]any{"status": 503, "readyConnections": 0, "connectorId": "3782d772-4d6e-4b53-9fb5-a3d0d6c6f0a1"})
	}))
	if os.Getenv("FAKE_CLOUDFLARED_NO_QUICKTUNNEL") != "1" {
		mux.HandleFunc("/quicktunnel", late(func(w http.ResponseWriter, _ *http.Request) {
			jsonOut(w, 200, map[string]string{"hostname": hostname})
		}))
	}
	mux.HandleFunc("/config", late(func(w http.ResponseWriter, _ *http.Request) {
		type rule struct {
			Hostname      string         `json:"hostname"`
			Path          *string        `json:"path"`
			Service       string         `json:"service"`
			OriginRequest map[string]any `json:"originRequest"`
		}
		var rules []rule
		if f.run {
			for _, kv := range strings.Split(os.Getenv("FAKE_CLOUDFLARED_INGRESS"), ",") {
				if h, s, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
					rules = append(rules, rule{Hostname: h, Service: s, OriginRequest: map[string]any{}})
				}
			}
			rules = append(rules, rule{Service: "http_status:404", OriginRequest: map[string]any{}})
		} else {
			rules = append(rules, rule{Service: f.url, OriginRequest: map[string]any{"noTLSVerify": f.noTLSVerify}})
		}
		jsonOut(w, 200, map[string]any{"version": 1, "config": map[string]any{
			"ingress": rules, "warp-routing": map[string]any{}, "originRequest": map[string]any{},
		}})
	}))
	mux.HandleFunc("/metrics", late(func(w http.ResponseWriter, _ *http.Request) {
		n := 0
		if connected() {
			n = 1
		}
		fmt.Fprintf(w, "# HELP cloudflared_tunnel_ha_connections Number of active ha connections\n# TYPE cloudflared_tunnel_ha_connections gauge\ncloudflared_tunnel_ha_connections %d\n", n)
	}))
	mux.HandleFunc("/healthcheck", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "OK\n") })
	return mux
}
