package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/gpumetrics/promcheck"
	"github.com/instanceportal/portal/internal/testproc"
)

// promQuery runs an instant query against a Prometheus and returns its
// result vector's label sets.
func promQuery(t *testing.T, base, q string) ([]map[string]string, error) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var doc struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, err
	}
	if doc.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, doc.Error)
	}
	out := make([]map[string]string, 0, len(doc.Data.Result))
	for _, r := range doc.Data.Result {
		out = append(out, r.Metric)
	}
	return out, nil
}

// startFleet starts n portals that a fleet Prometheus would scrape: each
// with its own CONTAINER_ID and label, its external port mapped to itself
// on 127.0.0.1, and the same token. It returns the portals and the file_sd
// entries `caddy portal prometheus-target` prints for them.
func startFleet(t *testing.T, n int, token string, extraEnv map[string]string) ([]*Portal, []gpumetrics.FileSDEntry) {
	t.Helper()
	var portals []*Portal
	var entries []gpumetrics.FileSDEntry
	for i := range n {
		ext, internal := freePort(t), freePort(t)
		env := map[string]string{
			"OPEN_BUTTON_TOKEN": token, "PUBLIC_IPADDR": "127.0.0.1",
			fmt.Sprintf("VAST_TCP_PORT_%d", ext): fmt.Sprint(ext),
			"CONTAINER_ID":                       fmt.Sprint(100 + i), "VAST_CONTAINERLABEL": fmt.Sprintf("C.%d", 100+i),
			"WORKSPACE": t.TempDir(),
		}
		for k, v := range extraEnv {
			env[k] = v
		}
		p := StartPortal(t, portalYAML(appYAML("Instance Portal", ext, internal, "/")), PortalOptions{Env: env})
		out, err := p.Caddy("portal", "prometheus-target", "--config", p.ConfigPath)
		if err != nil {
			t.Fatalf("prometheus-target: %v\n%s", err, out)
		}
		if strings.Contains(out, token) {
			t.Fatalf("prometheus-target printed the token:\n%s", out)
		}
		var e []gpumetrics.FileSDEntry
		if err := json.Unmarshal([]byte(out), &e); err != nil || len(e) != 1 {
			t.Fatalf("prometheus-target output is not one file_sd entry: %v\n%s", err, out)
		}
		if want := fmt.Sprintf("127.0.0.1:%d", ext); e[0].Targets[0] != want {
			t.Fatalf("target %q, want %q", e[0].Targets[0], want)
		}
		portals = append(portals, p)
		entries = append(entries, e...)
	}
	return portals, entries
}

// startPrometheus runs Debian's prometheus on 127.0.0.1 scraping the
// file_sd entries every second with the token as a bearer credentials
// file, the configuration docs/gpu_metrics.md gives. It returns its base URL.
func startPrometheus(t *testing.T, entries []gpumetrics.FileSDEntry, token string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not on PATH: run scripts/install-test-deps.sh (Debian package prometheus)")
	}
	dir := t.TempDir()
	sd, _ := json.Marshal(entries)
	tokenFile := filepath.Join(dir, "portal-token")
	for name, body := range map[string][]byte{"targets/fleet.json": sd, "portal-token": []byte(token + "\n")} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700)
		mustWrite(t, filepath.Join(dir, name), string(body), 0o600)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: instance-portal
    authorization:
      type: Bearer
      credentials_file: %s
    file_sd_configs:
      - files: ['%s/targets/*.json']
        refresh_interval: 1s
`, tokenFile, dir)
	mustWrite(t, filepath.Join(dir, "prometheus.yml"), cfg, 0o600)
	port := freePort(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	cmd.Dir = dir
	testproc.Start(t, cmd, testproc.Options{Name: "prometheus"})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitStatus(t, nil, base+"/-/ready", 200)
	return base
}

// TestPrometheusScrapesFleet: a real Prometheus scrapes two running portals
// found through file_sd_configs (entries printed by `caddy portal
// prometheus-target`), authenticating with a bearer credentials file; both
// targets are up and every series carries the instance's labels.
func TestPrometheusScrapesFleet(t *testing.T) {
	const token = "fleet-token-0123456789abcdef"
	portals, entries := startFleet(t, 2, token, nil)

	// Without the token the public /metrics is refused.
	resp, err := http.Get("http://" + entries[0].Targets[0] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("public /metrics without a token: %d, want 401", resp.StatusCode)
	}

	base := startPrometheus(t, entries, token)
	var got []map[string]string
	waitFor(t, 60*time.Second, "both portals scraped", func() bool {
		got, err = promQuery(t, base, `portal_gpu_available{job="instance-portal"}`)
		return err == nil && len(got) == 2
	})
	sort.Slice(got, func(i, j int) bool { return got[i]["instance_id"] < got[j]["instance_id"] })
	for i, m := range got {
		if m["instance_id"] != fmt.Sprint(100+i) || m["container_label"] != fmt.Sprintf("C.%d", 100+i) || m["host"] == "" ||
			m["instance"] != entries[i].Targets[0] || !strings.HasPrefix(m["reason"], "no_") {
			t.Errorf("series %d labels: %v", i, m)
		}
	}
	up, err := promQuery(t, base, `up{job="instance-portal"} == 1`)
	if err != nil || len(up) != 2 {
		t.Errorf("up: %v %v", up, err)
	}
	for _, q := range []string{`portal_memory_used_bytes`, `portal_disk_used_bytes{label="root"}`, `portal_cpu_limit_cores`} {
		if r, err := promQuery(t, base, q); err != nil || len(r) != 2 {
			t.Errorf("%s: %d series, %v", q, len(r), err)
		}
	}
	// Every query of our fleet dashboard is valid PromQL to a real
	// Prometheus (the dashboard variable set to match all).
	dash, err := os.ReadFile("../docs/grafana-fleet-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	queries, err := promcheck.Queries(dash)
	if err != nil || len(queries) < 12 {
		t.Fatalf("fleet dashboard queries: %d, %v", len(queries), err)
	}
	for _, q := range queries {
		if strings.HasPrefix(q, "label_values(") {
			continue // a Grafana template function, not PromQL
		}
		if _, err := promQuery(t, base, strings.ReplaceAll(q, "$instance_id", ".*")); err != nil {
			t.Errorf("fleet dashboard: %v", err)
		}
	}
	if r, err := promQuery(t, base, `portal_app_state{app="Instance Portal"}`); err != nil || len(r) != 2 {
		t.Errorf("app states: %v %v", r, err)
	}
	for _, p := range portals {
		if strings.Contains(p.Logs(), token) {
			t.Errorf("the token reached a portal log")
		}
	}
}
