package appstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/supervisor"
	"github.com/instanceportal/portal/supervisor/supervisordtest"
)

func app(key, name string, port int) App {
	return App{Key: key, AppInfo: portalconfig.AppInfo{Name: name, Hostname: "localhost", InternalPort: port, ExternalPort: port + 1}}
}

func proc(name, state string) supervisor.Process {
	return supervisor.Process{Name: name, Group: name, ID: name, State: state}
}

func TestDerive(t *testing.T) {
	apps := []App{
		app("Instance Portal", "Instance Portal", 11111),
		app("Jupyter", "Jupyter", 18080),           // program jupyter, RUNNING, port answers
		app("tb", "TensorBoard", 16006),            // program tensorboard (display name), RUNNING, port silent
		app("ComfyUI", "ComfyUI", 18188),           // program comfyui, STOPPED
		app("Sync", "Syncthing", 18384),            // program SYNCTHING (case), FATAL
		app("Api", "Inference API", 18000),         // no program, port answers: external
		app("Dead", "Dead API", 18001),             // no program, nothing answers
		app("Web", "Web UI", 17860),                // program "webui" found through its stale marker's app name
		app("Exited", "Exited", 17000),             // EXITED
		app("Backoff", "Backoff", 17001),           // BACKOFF
		app("Starting", "Starting", 17002),         // STARTING, port answers
		app("Stopping", "Stopping", 17003),         // STOPPING
		app("Unknown", "Unknown", 17004),           // UNKNOWN
		app("entry 13", "Jupyter Terminal", 18080), // link into Jupyter's port: no program of its own
	}
	webui := proc("webui", "STOPPED")
	webui.Skipped, webui.App = true, "Web UI"
	skippedNoApp := proc("forge", "EXITED")
	skippedNoApp.Skipped, skippedNoApp.App = true, "Forge"
	skippedUnnamed := proc("fooocus", "RUNNING") // exit_portal.sh sleeps before exiting
	skippedUnnamed.Skipped = true
	pooled := supervisor.Process{Name: "jupyter", Group: "notebooks", ID: "notebooks:jupyter", State: "STOPPED"}
	procs := []supervisor.Process{
		proc("caddy", "RUNNING"), proc("jupyter", "RUNNING"), pooled, proc("tensorboard", "RUNNING"),
		proc("comfyui", "STOPPED"), proc("SYNCTHING", "FATAL"), webui,
		proc("exited", "EXITED"), proc("backoff", "BACKOFF"), proc("starting", "STARTING"),
		proc("stopping", "STOPPING"), proc("unknown", "UNKNOWN"), skippedNoApp, skippedUnnamed,
		proc("cron", "RUNNING"), // no app, not skipped: not listed
	}
	answering := map[int]bool{18080: true, 18000: true, 17002: true, 18188: true}
	reach := func(apps []App) []bool {
		out := make([]bool, len(apps))
		for i, a := range apps {
			out[i] = answering[a.InternalPort]
		}
		return out
	}

	type want struct{ name, state, program, programState string }
	check := func(t *testing.T, got []State, wants []want) {
		t.Helper()
		if len(got) != len(wants) {
			t.Fatalf("got %d states, want %d: %+v", len(got), len(wants), got)
		}
		for i, w := range wants {
			g := got[i]
			if g.Name != w.name || g.State != w.state || g.Program != w.program || g.ProgramState != w.programState {
				t.Errorf("[%d] got {%s %s %s %s}, want %+v", i, g.Name, g.State, g.Program, g.ProgramState, w)
			}
		}
	}

	t.Run("with supervisord", func(t *testing.T) {
		got := derive(apps, procs, true, reach(apps))
		check(t, got, []want{
			{"Instance Portal", Running, "caddy", "RUNNING"},
			{"Jupyter", Running, "jupyter", "RUNNING"}, // the first program of that name wins
			{"TensorBoard", Starting, "tensorboard", "RUNNING"},
			{"ComfyUI", Stopped, "comfyui", "STOPPED"}, // stopped even though something answers
			{"Syncthing", Failed, "SYNCTHING", "FATAL"},
			{"Inference API", External, "", ""},
			{"Dead API", NotAnswering, "", ""},
			{"Web UI", Stopped, "webui", "STOPPED"},
			{"Exited", Stopped, "exited", "EXITED"},
			{"Backoff", Failed, "backoff", "BACKOFF"},
			{"Starting", Running, "starting", "STARTING"},
			{"Stopping", Stopped, "stopping", "STOPPING"},
			{"Unknown", Failed, "unknown", "UNKNOWN"},
			{"Jupyter Terminal", External, "", ""},
			{"Forge", NotConfigured, "forge", "EXITED"},
			{"fooocus", NotConfigured, "fooocus", "RUNNING"},
		})
		if !got[0].Reachable || !got[1].Reachable || got[2].Reachable || !got[5].Reachable {
			t.Errorf("reachable flags wrong: %+v", got[:6])
		}
		// Everything the adapter computed is kept.
		if got[1].Key != "Jupyter" || got[1].ExternalPort != 18081 || got[1].Hostname != "localhost" {
			t.Errorf("static fields lost: %+v", got[1])
		}
		if nc := got[14]; nc.ExternalPort != 0 || nc.Key != "" || nc.Reachable {
			t.Errorf("not-configured entry carries more than its name: %+v", nc)
		}
	})

	t.Run("without supervisord", func(t *testing.T) {
		got := derive(apps[:3], nil, false, reach(apps[:3]))
		check(t, got, []want{
			{"Instance Portal", Running, "", ""},
			{"Jupyter", Running, "", ""},
			{"TensorBoard", NotAnswering, "", ""},
		})
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Default(), ""},
		{Config{ProbeCache: confdecl.Duration(3 * time.Second)}, "probe_cache: must be at most 2s, got 3s"},
		{Config{ProbeCache: -1}, "probe_cache: must be at most 2s, got -1ns"},
		{Config{ProbeTimeout: confdecl.Duration(time.Microsecond)}, "probe_timeout: must be at least 1ms, got 1µs"},
		{Config{ProbeConcurrency: -2}, "probe_concurrency: must not be negative, got -2"},
		{Config{Config: supervisor.Config{Socket: "rel"}}, `socket: "rel": want an absolute path`},
		{Config{Apps: []App{{}}}, "apps: entry 1: name: missing"},
		{Config{Apps: []App{app("a", "A", 70000)}}, `apps: entry 1 "A": internal_port 70000: want 1-65535`},
	}
	for _, tt := range tests {
		err := tt.cfg.Check()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || err.Error() != tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := New(Config{ProbeConcurrency: -1}); err == nil {
		t.Error("New accepted an invalid config")
	}
}

func TestProbeAddrs(t *testing.T) {
	jupyter := App{Key: "Jupyter", AppInfo: portalconfig.AppInfo{Name: "Jupyter", Hostname: "127.0.0.1", ExternalPort: 8080, InternalPort: 18080, Proxied: true}}
	terminal := App{Key: "Jupyter Terminal", AppInfo: portalconfig.AppInfo{Name: "Jupyter Terminal", Hostname: "localhost", ExternalPort: 8080, InternalPort: 8080}}
	linkOnly := App{Key: "Own", AppInfo: portalconfig.AppInfo{Name: "Own", Hostname: "localhost", ExternalPort: 9000, InternalPort: 9000}}
	got := probeAddrs([]App{
		app("x", "X", 8080),
		{AppInfo: portalconfig.AppInfo{Name: "v6", Hostname: "[::1]", InternalPort: 80}},
		{AppInfo: portalconfig.AppInfo{Name: "nohost", InternalPort: 80}},
		app("Instance Portal", "Instance Portal", 11111),
		app("x", "X", 0),
		terminal, jupyter, linkOnly,
	})
	want := []string{"localhost:8080", "[::1]:80", "localhost:80", "", "", "127.0.0.1:18080", "127.0.0.1:18080", "localhost:9000"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("probeAddrs = %q, want %q", got, want)
	}
}

// fakeDial records connects and answers from a table, after an optional gate.
type fakeDial struct {
	mu       sync.Mutex
	calls    map[string]int
	open     map[string]bool
	gate     chan struct{}
	inFlight atomic.Int32
	maxSeen  atomic.Int32
}

func (f *fakeDial) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.calls[addr]++
	open := f.open[addr]
	f.mu.Unlock()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !open {
		return nil, errors.New("refused")
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

func TestProberCachesAndShares(t *testing.T) {
	f := &fakeDial{calls: map[string]int{}, open: map[string]bool{"a:1": true}}
	p := newProber(time.Second, 2*time.Second, 8)
	p.dial = f.dial
	clock := time.Unix(1000, 0)
	var clockMu sync.Mutex
	p.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	got := p.probe(context.Background(), []string{"a:1", "b:2", "a:1"})
	if !got["a:1"] || got["b:2"] || len(got) != 2 {
		t.Fatalf("probe = %v", got)
	}
	// Within the cache time: no new connect, however many ask.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); p.probe(context.Background(), []string{"a:1", "b:2"}) }()
	}
	wg.Wait()
	if f.calls["a:1"] != 1 || f.calls["b:2"] != 1 {
		t.Fatalf("connects within the cache time: %v", f.calls)
	}
	// After it, one new connect each; the app came up meanwhile.
	f.mu.Lock()
	f.open["b:2"] = true
	f.mu.Unlock()
	clockMu.Lock()
	clock = clock.Add(2 * time.Second)
	clockMu.Unlock()
	if got := p.probe(context.Background(), []string{"b:2"}); !got["b:2"] {
		t.Fatalf("after the cache time: %v", got)
	}
	if f.calls["b:2"] != 2 || f.calls["a:1"] != 1 {
		t.Fatalf("connects after the cache time: %v", f.calls)
	}
}

// The prober's goroutines block only on channels (the slot queue, the
// fake's gate, the inflight done channels), so in a synctest bubble
// synctest.Wait returns once every connect that can start has started.
func TestProberConcurrencyBoundAndSharedInflight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeDial{calls: map[string]int{}, open: map[string]bool{}, gate: make(chan struct{})}
		p := newProber(5*time.Second, 2*time.Second, 3)
		p.dial = f.dial
		var addrs []string
		for i := 0; i < 10; i++ {
			addrs = append(addrs, fmt.Sprintf("h:%d", i))
		}
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ { // four dashboards asking at once share the connects
			wg.Add(1)
			go func() { defer wg.Done(); p.probe(context.Background(), addrs) }()
		}
		synctest.Wait()
		if n := f.inFlight.Load(); n != 3 {
			t.Fatalf("%d connects in flight, bound is 3", n)
		}
		close(f.gate)
		wg.Wait()
		if m := f.maxSeen.Load(); m > 3 {
			t.Fatalf("up to %d connects at once, bound is 3", m)
		}
		for _, a := range addrs {
			if f.calls[a] != 1 {
				t.Fatalf("address %s connected %d times, want once", a, f.calls[a])
			}
		}
	})
}

func TestProberGoneAsker(t *testing.T) {
	// In a synctest bubble: the asker's 50 ms deadline passes in fake time.
	synctest.Test(t, func(t *testing.T) {
		f := &fakeDial{calls: map[string]int{}, open: map[string]bool{"x:1": true}, gate: make(chan struct{})}
		p := newProber(5*time.Second, 2*time.Second, 1)
		p.dial = f.dial
		// Occupy the only slot.
		go p.probe(context.Background(), []string{"busy:1"})
		synctest.Wait()
		if f.inFlight.Load() != 1 {
			t.Fatal("the busy connect did not start")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if got := p.probe(ctx, []string{"x:1"}); got["x:1"] {
			t.Fatalf("answer without a connect: %v", got)
		}
		close(f.gate)
		// The abandoned request's connect still ran, to completion: the next
		// asker gets its answer, not a "closed" left by the one that went away.
		if got := p.probe(context.Background(), []string{"x:1"}); !got["x:1"] {
			t.Fatalf("x:1 reported closed after an asker went away: %v", got)
		}
		if f.calls["x:1"] != 1 {
			t.Fatalf("x:1 connected %d times, want once", f.calls["x:1"])
		}
	})
}

// TestStatesRealSupervisord: real supervisord, real listeners, a real
// skip marker: the tracker's states follow stop and start.
// webAndWorker is the supervisord configuration of two long-running
// programs the tests below track.
const webAndWorker = `
[program:web]
command=/bin/sh -c "exec sleep 300"
startsecs=0
[program:worker]
command=/bin/sh -c "exec sleep 300"
startsecs=0
`

func TestStatesRealSupervisord(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	openPort := ln.Addr().(*net.TCPAddr).Port
	sock := supervisordtest.Start(t, webAndWorker+`[program:extra]
command=/bin/sh -c "exit 0"
startsecs=0
autorestart=false
exitcodes=0
`)
	skip := t.TempDir()
	if err := os.WriteFile(filepath.Join(skip, "extra"), []byte("Extra App\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	closedPort := testwait.FreePort(t)
	apps := []App{
		{Key: "Web", AppInfo: portalconfig.AppInfo{Name: "Web", Hostname: "127.0.0.1", InternalPort: openPort}},
		{Key: "Worker", AppInfo: portalconfig.AppInfo{Name: "Worker", Hostname: "127.0.0.1", InternalPort: closedPort}},
		{Key: "Outside", AppInfo: portalconfig.AppInfo{Name: "Outside", Hostname: "127.0.0.1", InternalPort: openPort}},
	}
	tr, err := New(Config{Apps: apps, Config: supervisor.Config{Socket: sock, SkipDir: skip}, ProbeCache: confdecl.Duration(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	summary := func() string {
		states, err := tr.States(context.Background())
		if err != nil {
			t.Fatalf("supervisor error: %v", err)
		}
		var s []string
		for _, st := range states {
			s = append(s, st.Name+"="+st.State)
		}
		return strings.Join(s, " ")
	}
	waitFor := func(want string) {
		t.Helper()
		var got string
		if !testwait.Poll(10*time.Second, 50*time.Millisecond, func() bool { got = summary(); return got == want }) {
			t.Fatalf("states %q, want %q", got, want)
		}
	}
	waitFor("Web=running Worker=starting Outside=external Extra App=not_configured")
	svc, _ := supervisor.New(supervisor.Config{Socket: sock, SkipDir: skip})
	if _, err := svc.Stop(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	waitFor("Web=stopped Worker=starting Outside=external Extra App=not_configured")
	if _, err := svc.Start(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	waitFor("Web=running Worker=starting Outside=external Extra App=not_configured")

	// supervisord gone: probes only, and no error.
	tr2, _ := New(Config{Apps: apps, Config: supervisor.Config{Socket: filepath.Join(skip, "none.sock")}})
	states, err := tr2.States(context.Background())
	if err != nil {
		t.Fatalf("missing supervisord reported as an error: %v", err)
	}
	if len(states) != 3 || states[0].State != Running || states[1].State != NotAnswering || states[2].State != Running || states[0].Program != "" {
		t.Fatalf("probe-only states: %+v", states)
	}
}

// BenchmarkStatesRealSupervisord is one /api/apps answer's work against
// real supervisord (one getAllProcessInfo over the socket, the skip-marker
// checks) with the probes cached, as under a dashboard's polling.
func BenchmarkStatesRealSupervisord(b *testing.B) {
	sock := supervisordtest.Start(b, webAndWorker)
	apps := []App{
		{Key: "Web", AppInfo: portalconfig.AppInfo{Name: "Web", Hostname: "127.0.0.1", InternalPort: 1}},
		{Key: "Worker", AppInfo: portalconfig.AppInfo{Name: "Worker", Hostname: "127.0.0.1", InternalPort: 2}},
	}
	tr, err := New(Config{Apps: apps, Config: supervisor.Config{Socket: sock, SkipDir: b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.States(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDeriveMarkerMatchesLikeExitPortal: exit_portal.sh decides with the
// same partial match as `caddy portal app` (`exit_portal.sh comfy` finds
// "ComfyUI"), so a marker naming "comfy" belongs to ComfyUI's card rather
// than showing an extra "not configured" card beside it.
func TestDeriveMarkerMatchesLikeExitPortal(t *testing.T) {
	t.Parallel()
	apps := []App{app("ComfyUI", "ComfyUI", 18188)}
	launcher := proc("launcher", "STOPPED")
	launcher.Skipped, launcher.App = true, "comfy"
	got := derive(apps, []supervisor.Process{launcher}, true, []bool{false})
	if len(got) != 1 || got[0].Name != "ComfyUI" || got[0].Program != "launcher" || got[0].State != Stopped {
		t.Fatalf("states = %+v", got)
	}
}
