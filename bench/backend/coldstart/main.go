// Command coldstart measures how long a server process takes from exec to
// answering 200 on every given URL, over several fresh starts, and prints
// the median. bench/proxy.sh runs it on our binary and on stock Caddy. It
// is Go rather than a curl loop so that the probe's own start-up cost (a
// fork per attempt) does not blur differences of a few milliseconds.
//
// Usage:
//
//	coldstart -runs 5 -url http://127.0.0.1:18001/ [-url …] [-header 'K: V'] \
//	    [-log FILE] -- caddy run --config …
//
// The command inherits the environment. Output, one line on stdout:
// "<median ms> <run1 ms>,<run2 ms>,…". Progress and errors go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// pollInterval is the pause between attempts on a URL that is not up yet:
// short enough to resolve a few milliseconds, long enough not to steal the
// CPU from the process that is starting.
const pollInterval = 2 * time.Millisecond

func main() {
	var urls, hdrs multiFlag
	flag.Var(&urls, "url", "URL that must answer 200, on 127.0.0.1 or localhost (repeatable)")
	flag.Var(&hdrs, "header", "request header 'Name: value' (repeatable)")
	runs := flag.Int("runs", 5, "fresh starts to measure (1 to 50)")
	timeout := flag.Duration("timeout", 15*time.Second, "give up on one start after this long")
	logPath := flag.String("log", os.DevNull, "file that receives the command's stdout and stderr")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	times, err := measure(ctx, config{
		urls: urls, headers: hdrs, runs: *runs, timeout: *timeout,
		logPath: *logPath, argv: flag.Args(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
	parts := make([]string, len(times))
	for i, t := range times {
		parts[i] = fmt.Sprintf("%.1f", ms(t))
	}
	fmt.Printf("%.1f %s\n", ms(median(times)), strings.Join(parts, ","))
}

type config struct {
	urls, headers []string
	runs          int
	timeout       time.Duration
	logPath       string
	argv          []string
}

func measure(ctx context.Context, c config) ([]time.Duration, error) {
	if len(c.argv) == 0 {
		return nil, errors.New("no command after --")
	}
	if len(c.urls) == 0 {
		return nil, errors.New("no -url")
	}
	if c.runs < 1 || c.runs > 50 {
		return nil, fmt.Errorf("-runs %d: want 1 to 50", c.runs)
	}
	reqs, err := requests(c.urls, c.headers)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// A fresh connection per attempt: a kept-alive one could outlive the
	// process under test and answer for the next start.
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		Timeout:   time.Second,
	}

	times := make([]time.Duration, 0, c.runs)
	for i := range c.runs {
		for _, r := range reqs {
			if up(client, r) {
				return nil, fmt.Errorf("%s answers before the start: a stale process holds the port", r.URL)
			}
		}
		d, err := once(ctx, client, reqs, c, logf)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w (output in %s)", i+1, err, c.logPath)
		}
		fmt.Fprintf(os.Stderr, "  start %d: %.1f ms\n", i+1, ms(d))
		times = append(times, d)
	}
	return times, nil
}

// once starts the command, waits for 200 on every URL, then stops it and
// waits for it to exit so that the next start finds the ports free.
func once(ctx context.Context, client *http.Client, reqs []*http.Request, c config, logf io.Writer) (time.Duration, error) {
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that stopping it reaches any child too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stopGroup(cmd.Process.Pid, exited)

	deadline := time.NewTimer(c.timeout)
	defer deadline.Stop()
	for _, r := range reqs {
		for !up(client, r) {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case err := <-exited:
				exited <- err // for stopGroup
				return 0, fmt.Errorf("process exited before %s answered: %v", r.URL, err)
			case <-deadline.C:
				return 0, fmt.Errorf("%s did not answer 200 within %s", r.URL, c.timeout)
			case <-time.After(pollInterval):
			}
		}
	}
	return time.Since(start), nil
}

// stopGroup sends SIGTERM to the process group, then SIGKILL if it has not
// exited within five seconds, and waits for the exit.
func stopGroup(pid int, exited chan error) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
}

func up(client *http.Client, r *http.Request) bool {
	resp, err := client.Do(r)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func requests(urls, headers []string) ([]*http.Request, error) {
	reqs := make([]*http.Request, 0, len(urls))
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
			return nil, fmt.Errorf("-url %s: only 127.0.0.1 or localhost", raw)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("-url %s: %v", raw, err)
		}
		r, err := http.NewRequest(http.MethodGet, raw, nil)
		if err != nil {
			return nil, err
		}
		for _, h := range headers {
			name, value, ok := strings.Cut(h, ":")
			if !ok {
				return nil, fmt.Errorf("-header %q: want 'Name: value'", h)
			}
			r.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
