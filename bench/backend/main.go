// Command backend is the steady upstream of the proxy benchmarks
// (bench/proxy.sh): it answers every request on each -listen address with
// the same fixed body, so that the proxy in front of it, not the backend,
// is what a run measures. It is a Go program rather than a script because
// an interpreter's jitter would drown the differences being measured.
//
// Usage:
//
//	backend -listen 127.0.0.1:19001 -listen 127.0.0.1:19002 [-size 1024]
//
// It prints "ready" once every address listens and stops on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// listenFlags collects repeated -listen values.
type listenFlags []string

func (l *listenFlags) String() string { return strings.Join(*l, ",") }

func (l *listenFlags) Set(v string) error {
	host, _, err := net.SplitHostPort(v)
	if err != nil {
		return err
	}
	// Benchmarks never listen beyond this machine.
	if host != "127.0.0.1" && host != "localhost" {
		return fmt.Errorf("-listen %s: only 127.0.0.1 or localhost", v)
	}
	*l = append(*l, v)
	return nil
}

func main() {
	var addrs listenFlags
	flag.Var(&addrs, "listen", "address to serve on, 127.0.0.1:PORT (repeatable)")
	size := flag.Int("size", 1024, "response body size in bytes (0 to 16 MiB)")
	flag.Parse()
	if err := run(addrs, *size); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

func run(addrs []string, size int) error {
	if len(addrs) == 0 {
		return errors.New("no -listen address")
	}
	if size < 0 || size > 16<<20 {
		return fmt.Errorf("-size %d: want 0 to %d", size, 16<<20)
	}
	body := makeBody(size)
	length := strconv.Itoa(len(body))
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		// Text, so that a proxy's compression has something to do when a
		// client asks for it.
		h["Content-Type"] = []string{"text/html; charset=utf-8"}
		h["Content-Length"] = []string{length}
		_, _ = w.Write(body)
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	servers := make([]*http.Server, 0, len(addrs))
	errc := make(chan error, len(addrs))
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			shutdown(servers)
			return err
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() { errc <- srv.Serve(ln) }()
	}
	fmt.Println("ready")

	select {
	case <-ctx.Done():
		shutdown(servers)
		return nil
	case err := <-errc:
		shutdown(servers)
		return err
	}
}

// shutdown stops every server; each Serve goroutine then returns
// http.ErrServerClosed into the buffered channel and exits.
func shutdown(servers []*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
}

// makeBody is size bytes of HTML-ish text: compressible like a real page,
// not a single repeated byte that compresses to nothing.
func makeBody(size int) []byte {
	const line = "<p>Instance Portal proxy benchmark: the quick brown fox jumps over the lazy dog %06d</p>\n"
	b := make([]byte, 0, size+len(line))
	for i := 0; len(b) < size; i++ {
		b = fmt.Appendf(b, line, i)
	}
	return b[:size]
}
