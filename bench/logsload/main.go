// Command logsload measures the portal's live log stream from outside:
// write() → WebSocket receipt latency, fan-out of a fast writer to many
// WebSocket clients with every line checked for loss and order, the
// server's peak RSS during that, and its CPU while idle. It talks to
// 127.0.0.1 only and stops by itself. Run by bench/logs.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

type event struct {
	Type  string   `json:"type"`
	File  string   `json:"file"`
	Lines []string `json:"lines"`
}

func main() {
	base := flag.String("url", "", "ws://127.0.0.1:PORT/api/logs")
	dir := flag.String("dir", "", "the portal's log directory")
	pid := flag.Int("pid", 0, "caddy's pid (RSS and CPU)")
	clients := flag.Int("clients", 50, "WebSocket clients in the load phase")
	rate := flag.Int("rate", 10000, "lines per second in the load phase")
	dur := flag.Duration("duration", 30*time.Second, "load phase length")
	samples := flag.Int("samples", 1000, "latency samples")
	idle := flag.Duration("idle", 10*time.Second, "idle CPU measurement length")
	flag.Parse()
	if *base == "" || *dir == "" || *pid == 0 || !strings.HasPrefix(*base, "ws://127.0.0.1:") {
		fmt.Fprintln(os.Stderr, "usage: logsload -url ws://127.0.0.1:PORT/api/logs -dir LOGDIR -pid PID")
		os.Exit(2)
	}
	if err := run(*base, *dir, *pid, *clients, *rate, *dur, *samples, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "logsload:", err)
		os.Exit(1)
	}
}

func run(base, dir string, pid, clients, rate int, dur time.Duration, samples int, idle time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), dur+idle+5*time.Minute)
	defer cancel()

	fmt.Printf("caddy RSS at start: %.1f MiB\n", float64(rss(pid))/(1<<20))

	// 1. Latency: one client, one line every 5 ms carrying its write time.
	lat := filepath.Join(dir, "latency.log")
	if err := os.WriteFile(lat, nil, 0o644); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // let the watcher pick the file up
	c, err := dial(ctx, base, "latency.log")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(lat, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	got := make(chan time.Duration, samples)
	// The server subscribes the client after the handshake returns; its
	// first snapshot says it has. Lines written before that are, with
	// tail=0, rightly not sent, so writing starts after it.
	subscribed := make(chan struct{})
	go func() {
		first := true
		for len(got) < samples {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			now := time.Now()
			for _, e := range decode(msg) {
				if first && e.Type == "snapshot" {
					first = false
					close(subscribed)
				}
				for _, l := range e.Lines {
					if ns, ok := strings.CutPrefix(l, "t="); ok {
						if v, err := strconv.ParseInt(ns, 10, 64); err == nil && e.Type == "append" {
							got <- now.Sub(time.Unix(0, v))
						}
					}
				}
			}
		}
	}()
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("latency: no snapshot within 10s of subscribing")
	}
	for range samples {
		if _, err := fmt.Fprintf(f, "t=%d\n", time.Now().UnixNano()); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	var lats []time.Duration
	timeout := time.After(10 * time.Second)
collect:
	for len(lats) < samples {
		select {
		case d := <-got:
			lats = append(lats, d)
		case <-timeout:
			break collect
		}
	}
	_ = f.Close()
	c.CloseNow()
	slices.Sort(lats)
	if len(lats) < samples {
		return fmt.Errorf("latency: %d of %d lines arrived", len(lats), samples)
	}
	fmt.Printf("latency write()->websocket: n=%d p50=%v p99=%v max=%v\n", len(lats),
		lats[len(lats)/2].Round(time.Microsecond), lats[len(lats)*99/100].Round(time.Microsecond), lats[len(lats)-1].Round(time.Microsecond))

	// 2. Load: `clients` readers of load.log, a writer at `rate` lines/s.
	load := filepath.Join(dir, "load.log")
	if err := os.WriteFile(load, nil, 0o644); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	total := int(int64(rate) * int64(dur) / int64(time.Second))
	var wg sync.WaitGroup
	var bad atomic.Int64
	counts := make([]int, clients)
	var errs []string
	var mu sync.Mutex
	conns := make([]*websocket.Conn, clients)
	for i := range clients {
		if conns[i], err = dial(ctx, base, "load.log"); err != nil {
			return err
		}
	}
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer conns[i].CloseNow()
			next := 0
			for next < total {
				_, msg, err := conns[i].Read(ctx)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("client %d after %d lines: %v", i, next, err))
					mu.Unlock()
					return
				}
				for _, e := range decode(msg) {
					if e.Type == "lagged" {
						bad.Add(1)
					}
					if e.Type != "append" {
						continue
					}
					for _, l := range e.Lines {
						n, _ := strconv.Atoi(strings.TrimPrefix(l, "n="))
						if n != next {
							bad.Add(1)
							next = n
						}
						next++
					}
				}
			}
			counts[i] = next
		}(i)
	}
	var peak atomic.Int64
	stopRSS := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-t.C:
				if r := rss(pid); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	w, err := os.OpenFile(load, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	written := 0
	for written < total {
		<-tick.C
		due := min(total, int(time.Since(start)*time.Duration(rate)/time.Second))
		for ; written < due; written++ {
			// One write(2) per line, as a program printing would.
			if _, err := fmt.Fprintf(w, "n=%d\n", written); err != nil {
				return err
			}
		}
	}
	tick.Stop()
	writeTime := time.Since(start)
	_ = w.Close()
	wg.Wait()
	close(stopRSS)
	complete := 0
	for _, n := range counts {
		if n == total {
			complete++
		}
	}
	fmt.Printf("load: %d lines in %v (%.0f lines/s) to %d websocket clients: %d clients got every line in order, %d gaps/reorders/lags, peak RSS %.1f MiB\n",
		total, writeTime.Round(time.Millisecond), float64(total)/writeTime.Seconds(), clients, complete, bad.Load(), float64(peak.Load())/(1<<20))
	for _, e := range errs {
		fmt.Println("  ", e)
	}

	// 3. Idle CPU with one client connected.
	c, err = dial(ctx, base, "")
	if err != nil {
		return err
	}
	defer c.CloseNow()
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	time.Sleep(time.Second)
	t0, c0 := time.Now(), cpuTicks(pid)
	time.Sleep(idle)
	used := float64(cpuTicks(pid)-c0) / 100 // USER_HZ
	fmt.Printf("idle: %.2f%% of one core over %v (one client connected, two files followed)\n", 100*used/time.Since(t0).Seconds(), idle)
	if complete != clients || bad.Load() != 0 {
		return fmt.Errorf("lines lost or reordered")
	}
	return nil
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

func decode(msg []byte) []event {
	var out []event
	for _, line := range strings.Split(string(msg), "\n") {
		var e event
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// rss reads VmRSS (bytes) of pid.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
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
