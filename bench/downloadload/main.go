// Command downloadload is bench/download.sh's helper, on 127.0.0.1 only:
//
//	downloadload serve -addr 127.0.0.1:PORT -dir DIR [-rate BYTES_PER_S]
//	downloadload fetch [-c N] URL DEST [URL DEST ...]
//
// serve is the one file server every client of the benchmark downloads
// from (curl, wget and ours): Range requests, an optional cap on each
// connection's rate (what a remote host's per-connection throughput looks
// like; without one, a loopback server has no latency for parallelism to
// hide), and GET /__bytes, the body bytes it has sent so far.
//
// fetch runs package download (the provisioner's downloader) on the pairs
// and prints one line: elapsed_s, bytes (on disk, all files) and
// peak_rss_kib (VmHWM).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/instanceportal/portal/download"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: downloadload serve|fetch …")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "fetch":
		err = fetch(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "downloadload:", err)
		os.Exit(1)
	}
}

var served atomic.Int64

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (127.0.0.1 only)")
	dir := fs.String("dir", "", "directory served")
	rate := fs.Int64("rate", 0, "cap on each connection's rate, bytes per second (0: none)")
	_ = fs.Parse(args)
	if !strings.HasPrefix(*addr, "127.0.0.1:") || *dir == "" {
		return fmt.Errorf("serve: want -addr 127.0.0.1:PORT and -dir")
	}
	files := http.FileServer(http.Dir(*dir))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/__bytes" {
			fmt.Fprintln(w, served.Load())
			return
		}
		files.ServeHTTP(&meter{ResponseWriter: w, rate: *rate, start: time.Now()}, r)
	})
	return http.ListenAndServe(*addr, h)
}

// meter counts what is sent and, with a rate, paces it.
type meter struct {
	http.ResponseWriter
	rate  int64
	start time.Time
	sent  int64
}

func (m *meter) Write(b []byte) (int, error) {
	n, err := m.ResponseWriter.Write(b)
	served.Add(int64(n))
	m.sent += int64(n)
	if m.rate > 0 {
		due := time.Duration(float64(m.sent) / float64(m.rate) * float64(time.Second))
		if wait := due - time.Since(m.start); wait > 0 {
			time.Sleep(wait)
		}
	}
	return n, err
}

func fetch(args []string) error {
	fs := flag.NewFlagSet("fetch", flag.ExitOnError)
	conc := fs.Int("c", 0, "pool width (0: the defaults, 5 for plain URLs)")
	_ = fs.Parse(args)
	rest := fs.Args()
	if len(rest) == 0 || len(rest)%2 != 0 {
		return fmt.Errorf("fetch: want URL DEST pairs")
	}
	var specs []download.Spec
	for i := 0; i < len(rest); i += 2 {
		specs = append(specs, download.Spec{URL: rest[i], Dest: rest[i+1]})
	}
	start := time.Now()
	err := download.Run(context.Background(), specs, download.Options{Concurrency: *conc, Retries: 1})
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	var bytes int64
	for _, s := range specs {
		if fi, err := os.Stat(filepath.Clean(s.Dest)); err == nil {
			bytes += fi.Size()
		}
	}
	fmt.Printf("elapsed_s=%.3f bytes=%d peak_rss_kib=%d\n", elapsed.Seconds(), bytes, peakRSS())
	return nil
}

// peakRSS is VmHWM from /proc/self/status, in KiB.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var n int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n
		}
	}
	return -1
}
