// Command logsload measures the portal's live log stream from outside, as
// a dashboard sees it. It talks to 127.0.0.1 only and stops by itself.
// bench/logs.sh runs it once per table row, against a fresh caddy each
// time, with caddy and logsload pinned to different cores.
//
//	-mode latency  one client, one line every 5 ms: write() → receipt, then
//	               caddy's CPU while idle with that client connected
//	-mode load     -clients WebSocket clients of one file that a writer
//	               fills at -rate lines/s for -duration: every line carries
//	               its write time and number, and every client times every
//	               line (write() → receipt), checks loss and order, and
//	               counts lags; caddy's CPU and peak RSS over the phase
//
// Each run prints a human line and a machine line starting "ROW\t" for
// bench/logs.sh's table.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

func main() {
	mode := flag.String("mode", "load", "latency or load")
	base := flag.String("url", "", "ws://127.0.0.1:PORT/api/logs")
	dir := flag.String("dir", "", "the portal's log directory")
	pid := flag.Int("pid", 0, "caddy's pid (RSS and CPU)")
	clients := flag.Int("clients", 50, "WebSocket clients (load)")
	rate := flag.Int("rate", 10000, "lines per second (load)")
	dur := flag.Duration("duration", 10*time.Second, "load phase length")
	samples := flag.Int("samples", 1000, "latency samples (latency)")
	idle := flag.Duration("idle", 10*time.Second, "idle CPU measurement (latency)")
	heap := flag.String("heap", "", "after the load phase, save caddy's heap profile here (needs -admin)")
	cpuProf := flag.String("cpu", "", "save a CPU profile of caddy taken over the middle of the load phase here (needs -admin)")
	admin := flag.String("admin", "", "caddy's admin address, 127.0.0.1:PORT (for -heap)")
	flag.Parse()
	if *base == "" || *dir == "" || *pid == 0 || !strings.HasPrefix(*base, "ws://127.0.0.1:") ||
		(*admin != "" && !strings.HasPrefix(*admin, "127.0.0.1:")) {
		fmt.Fprintln(os.Stderr, "usage: logsload -mode latency|load -url ws://127.0.0.1:PORT/api/logs -dir LOGDIR -pid PID [...]")
		os.Exit(2)
	}
	var err error
	switch *mode {
	case "latency":
		err = runLatency(*base, *dir, *pid, *samples, *idle)
	case "load":
		err = runLoad(*base, *dir, *pid, *clients, *rate, *dur, *admin, *heap, *cpuProf)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "logsload:", err)
		os.Exit(1)
	}
}

func dial(ctx context.Context, base, file string) (*websocket.Conn, error) {
	u := base + "/ws?tail=0"
	if file != "" {
		u += "&file=" + file
	}
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(64 << 20)
	return c, nil
}

// waitSnapshot reads until the server's snapshot has arrived: from then on
// the client is subscribed, and lines written are streamed to it.
func waitSnapshot(ctx context.Context, c *websocket.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("no snapshot: %w", err)
		}
		if bytes.Contains(msg, []byte(`"type":"snapshot"`)) {
			return nil
		}
	}
}

func runLatency(base, dir string, pid, samples int, idle time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	startRSS := rss(pid, "VmRSS")
	lat := filepath.Join(dir, "latency.log")
	if err := os.WriteFile(lat, nil, 0o644); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // let the watcher pick the file up
	c, err := dial(ctx, base, "latency.log")
	if err != nil {
		return err
	}
	defer c.CloseNow()
	if err := waitSnapshot(ctx, c); err != nil {
		return err
	}
	f, err := os.OpenFile(lat, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var h histogram
	got := make(chan struct{}, samples)
	go func() {
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			now := time.Now().UnixNano()
			scanLines(msg, func(_, t int64) {
				h.add(time.Duration(now - t))
				got <- struct{}{}
			}, nil)
		}
	}()
	for i := range samples {
		if _, err := fmt.Fprintf(f, "n=%d t=%d\n", i, time.Now().UnixNano()); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	timeout := time.After(10 * time.Second)
	for n := 0; n < samples; n++ {
		select {
		case <-got:
		case <-timeout:
			return fmt.Errorf("latency: %d of %d lines arrived", n, samples)
		}
	}
	fmt.Printf("idle latency write()->websocket, 1 client, 1 line every 5 ms: n=%d p50=%v p99=%v max=%v (caddy RSS at start %.1f MiB)\n",
		h.n, h.quantile(0.5), h.quantile(0.99), h.max, mib(startRSS))

	// Idle CPU with that client still connected.
	time.Sleep(time.Second)
	t0, c0 := time.Now(), cpuTicks(pid)
	time.Sleep(idle)
	cpu := 100 * float64(cpuTicks(pid)-c0) / 100 / time.Since(t0).Seconds() // USER_HZ = 100
	fmt.Printf("idle: %.2f%% of one core over %v (one client connected, one file followed)\n", cpu, idle)
	fmt.Printf("ROW\tidle latency: 1 client, 1 line / 5 ms (%d samples)\t%s\t%s\t%s\t%.2f %% (idle, after)\t%.1f MiB\t%d/%d lines\n",
		samples, fmtDur(h.quantile(0.5)), fmtDur(h.quantile(0.99)), fmtDur(h.max), cpu, mib(rss(pid, "VmHWM")), h.n, samples)
	return nil
}

type clientResult struct {
	lines, bad, lags int64
	err              error
	h                histogram
}

func runLoad(base, dir string, pid, clients, rate int, dur time.Duration, admin, heapOut, cpuOut string) error {
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	startRSS := rss(pid, "VmRSS")
	load := filepath.Join(dir, "load.log")
	if err := os.WriteFile(load, nil, 0o644); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	total := int64(rate) * int64(dur) / int64(time.Second)

	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		c, err := dial(ctx, base, "load.log")
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		defer c.CloseNow()
		if err := waitSnapshot(ctx, c); err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		conns[i] = c
	}

	results := make([]clientResult, clients)
	var wg sync.WaitGroup
	var lastReceipt atomic.Int64
	for i, c := range conns {
		wg.Add(1)
		go func(r *clientResult, c *websocket.Conn) {
			defer wg.Done()
			next := int64(0)
			for next < total {
				_, msg, err := c.Read(ctx)
				if err != nil {
					r.err = fmt.Errorf("after %d lines: %w", next, err)
					return
				}
				now := time.Now().UnixNano()
				scanLines(msg, func(n, t int64) {
					if n != next {
						r.bad++
					}
					next = n + 1
					r.lines++
					r.h.add(time.Duration(now - t))
				}, func() { r.lags++ })
			}
			lastReceipt.Store(time.Now().UnixNano())
		}(&results[i], c)
	}

	// The peak RSS, and what it was made of: anonymous memory (heap,
	// stacks) and file-backed pages (mostly the executable's text).
	var peak, peakAnon, peakFile atomic.Int64
	stopRSS := make(chan struct{})
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-t.C:
				if r := rss(pid, "VmRSS"); r > peak.Load() {
					peak.Store(r)
					peakAnon.Store(rss(pid, "RssAnon"))
					peakFile.Store(rss(pid, "RssFile"))
				}
			}
		}
	}()

	w, err := os.OpenFile(load, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	profDone := make(chan struct{})
	if cpuOut != "" && admin != "" && dur >= 2*time.Second {
		go func() {
			defer close(profDone)
			time.Sleep(dur / 4)
			secs := max(1, int(dur/2/time.Second))
			if err := saveProfile(admin, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), cpuOut); err != nil {
				fmt.Fprintln(os.Stderr, "logsload: CPU profile:", err)
			}
		}()
	} else {
		close(profDone)
	}
	c0, self0 := cpuTicks(pid), cpuTicks(os.Getpid())
	start := time.Now()
	var written int64
	var line []byte
	for written < total {
		// Each line is written when it is due, on its own: lines spread
		// evenly over the second, as a program printing them would, so the
		// tailer sees them one by one and nothing batches them for free.
		// A writer that falls behind (its core is shared) catches up in a
		// burst.
		if due := int64(time.Since(start)) * int64(rate) / int64(time.Second); written >= due {
			time.Sleep(time.Duration(int64(time.Second)/int64(rate)) / 4)
			continue
		}
		// One write(2) per line, stamped just before it.
		line = append(line[:0], "n="...)
		line = strconv.AppendInt(line, written, 10)
		line = append(line, " t="...)
		line = strconv.AppendInt(line, time.Now().UnixNano(), 10)
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return err
		}
		written++
	}
	writeTime := time.Since(start)
	_ = w.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cancel() // stragglers are counted as incomplete below
		<-done
	}
	end := time.Now()
	if last := lastReceipt.Load(); last > 0 {
		end = time.Unix(0, last)
	}
	cpu := 100 * float64(cpuTicks(pid)-c0) / 100 / end.Sub(start).Seconds()
	// The load generator's own CPU: near 100% of its core, the clients
	// read late and the latencies are partly its own.
	selfCPU := 100 * float64(cpuTicks(os.Getpid())-self0) / 100 / end.Sub(start).Seconds()
	close(stopRSS)
	<-profDone
	if heapOut != "" && admin != "" {
		if err := saveProfile(admin, "/debug/pprof/heap", heapOut); err != nil {
			fmt.Fprintln(os.Stderr, "logsload: heap profile:", err)
		}
	}

	var h histogram
	var lines, bad, lags int64
	complete := 0
	var errs []string
	for i, r := range results {
		h.merge(&r.h)
		lines += r.lines
		bad += r.bad
		lags += r.lags
		if r.lines == total && r.bad == 0 && r.err == nil {
			complete++
		}
		if r.err != nil && len(errs) < 5 {
			errs = append(errs, fmt.Sprintf("client %d: %v", i, r.err))
		}
	}
	peakRSS := max(peak.Load(), rss(pid, "VmHWM"))
	fmt.Printf("load: %d clients × %d lines/s for %v (%d lines written in %v): p50=%v p99=%v max=%v over %d receipts; "+
		"caddy %.0f%% of one core, RSS %.1f MiB at start, peak %.1f MiB (sampled peak %.1f MiB: %.1f anonymous, %.1f file-backed); "+
		"%d/%d clients got every line in order, %d gaps/reorders, %d lags; logsload %.0f%% of its core\n",
		clients, rate, dur, total, writeTime.Round(time.Millisecond), h.quantile(0.5), h.quantile(0.99), h.max, h.n,
		cpu, mib(startRSS), mib(peakRSS), mib(peak.Load()), mib(peakAnon.Load()), mib(peakFile.Load()), complete, clients, bad, lags, selfCPU)
	for _, e := range errs {
		fmt.Println("  ", e)
	}
	fmt.Printf("ROW\t%d clients × %s lines/s, %v\t%s\t%s\t%s\t%.0f %%\t%.1f MiB\t%d/%d complete, %d gaps, %d lags (logsload %.0f %% of its core)\n",
		clients, thousands(rate), dur, fmtDur(h.quantile(0.5)), fmtDur(h.quantile(0.99)), fmtDur(h.max), cpu, mib(peakRSS),
		complete, clients, bad, lags, selfCPU)
	if complete != clients {
		return errors.New("lines lost or reordered")
	}
	return nil
}

// scanLines finds the bench's final lines ("n=<number> t=<unix nanos>")
// in a message of JSON events (one per line) without decoding it: at
// 10 000 lines/s to 200 clients, a JSON decoder per message would make the
// load generator the bottleneck. Only "append" events count: an "update"
// carries the unfinished line, which a read racing the writer may cut.
// lagged is called for each "lagged" event.
func scanLines(msg []byte, line func(n, t int64), lagged func()) {
	for len(msg) > 0 {
		ev := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			ev, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		switch {
		case bytes.HasPrefix(ev, []byte(`{"type":"append"`)):
			scanAppend(ev, line)
		case bytes.HasPrefix(ev, []byte(`{"type":"lagged"`)) && lagged != nil:
			lagged()
		}
	}
}

func scanAppend(ev []byte, line func(n, t int64)) {
	for rest := ev; ; {
		i := bytes.Index(rest, []byte(`"n=`))
		if i < 0 {
			return
		}
		rest = rest[i+3:]
		n, k := digits(rest)
		if k == 0 || !bytes.HasPrefix(rest[k:], []byte(" t=")) {
			continue
		}
		rest = rest[k+3:]
		t, k := digits(rest)
		if k == 0 {
			continue
		}
		rest = rest[k:]
		line(n, t)
	}
}

func digits(b []byte) (int64, int) {
	var v int64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	return v, i
}

// histogram keeps latencies with exact microseconds below 1 ms and 64
// buckets per power of two above (under 1.6% error), in a few KiB per
// client whatever the number of samples.
type histogram struct {
	counts [1024 + 40*64]uint32
	n      int64
	max    time.Duration
}

func bucket(us int64) int {
	if us < 1024 {
		return int(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 1 // ≥ 10
	sub := int(us>>(e-6)) & 63
	return min(1024+(e-10)*64+sub, 1024+40*64-1)
}

func bucketValue(i int) time.Duration {
	if i < 1024 {
		return time.Duration(i) * time.Microsecond
	}
	e := (i-1024)/64 + 10
	sub := int64((i - 1024) % 64)
	return time.Duration((int64(1)<<e)+sub<<(e-6)) * time.Microsecond
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucket(d.Microseconds())]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := int64(q * float64(h.n))
	var seen int64
	for i, c := range h.counts {
		seen += int64(c)
		if seen > want {
			return bucketValue(i)
		}
	}
	return h.max
}

func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + " " + s[i:]
	}
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// rss reads a size field (VmRSS, VmHWM) of pid's status, in bytes.
func rss(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTicks is utime+stime of pid, in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// saveProfile fetches one of caddy's profiles from its admin endpoint
// (/debug/pprof/…, 127.0.0.1 only).
func saveProfile(admin, path, out string) error {
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
