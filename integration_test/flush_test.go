package integration_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestFlushAtOnceWithCompressionOff: with compression off and the default
// flush_interval -1, the front holds back only the flush of a known-length
// response's bare headers (package headerflush). What flushing at once is
// for still holds, through the real binary: a stream's headers reach the
// client before its first event, and each part of a known-length body
// reaches it as the app writes it, and a WebSocket upgrade passes (the
// proxy hijacks the connection through the front's writer). Each backend
// waits for the test to say it received the previous step (or 10 s, which
// fails the test).
func TestFlushAtOnceWithCompressionOff(t *testing.T) {
	step := make(chan struct{}, 1) // buffered: a send never blocks when the backend gave up
	waited := make(chan bool, 2)   // true: the test answered, false: timed out
	wait := func() {
		select {
		case <-step:
			waited <- true
		case <-time.After(10 * time.Second):
			waited <- false
		}
	}
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/events": // unknown length: headers first, the event later
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			http.NewResponseController(w).Flush()
			wait()
			fmt.Fprint(w, "data: one\n\n")
		case "/ws": // a WebSocket echo: the proxy hijacks through the front's writer
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			typ, msg, err := c.Read(r.Context())
			if err == nil {
				_ = c.Write(r.Context(), typ, msg)
			}
		case "/file": // known length, written in two parts
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "first")
			http.NewResponseController(w).Flush()
			wait()
			io.WriteString(w, "later")
		default:
			w.Header().Set("Content-Length", "2")
			io.WriteString(w, "ok")
		}
	}))
	ext := freePort(t)
	StartPortal(t, portalYAML(appYAML("App", ext, be.Port, "/")), PortalOptions{Env: map[string]string{
		"ENABLE_AUTH": "false", "CADDY_ENABLE_COMPRESSION": "false"}})
	base := "http://127.0.0.1:" + strconv.Itoa(ext)
	waitStatus(t, nil, base+"/", 200)
	client := &http.Client{Timeout: 20 * time.Second}

	resp, err := client.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	step <- struct{}{} // the headers are here; the event may come
	if !<-waited {
		t.Fatal("the stream's headers waited for its first event")
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "data: one\n\n" {
		t.Errorf("stream body %q", b)
	}
	resp.Body.Close()

	resp, err = client.Get(base + "/file")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
		t.Fatalf("first part: %q %v", first, err)
	}
	step <- struct{}{} // the first part is here
	if !<-waited {
		t.Fatal("the first part of a known-length body waited for the rest")
	}
	if rest, _ := io.ReadAll(resp.Body); string(rest) != "later" {
		t.Errorf("rest %q", rest)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+strconv.Itoa(ext)+"/ws", nil)
	if err != nil {
		t.Fatalf("WebSocket through the front: %v", err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte("echo me")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "echo me" {
		t.Errorf("WebSocket echo: %q %v", msg, err)
	}
}
