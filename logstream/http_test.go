package logstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A WebSocket client that stops reading is dropped once a write has been
// stuck for WriteTimeout; the handler returns instead of blocking forever.
func TestWebSocketStalledWriterIsDropped(t *testing.T) {
	svc, dir := newTestService(t, false)
	h := &Handler{Svc: svc, WriteTimeout: 300 * time.Millisecond, Queue: 1 << 20, Ping: time.Hour}
	returned := make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.ServeHTTP(w, r)
		returned <- time.Now()
	}))
	defer srv.Close()

	appendFile(t, filepath.Join(dir, "big.log"), "start\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/api/logs/ws?file=big.log&tail=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	// Never read: loopback socket buffers hold a few MB, so write far more.
	line := strings.Repeat("x", 60<<10) + "\n"
	var chunk strings.Builder
	for range 64 {
		chunk.WriteString(line)
	}
	start := time.Now()
	for i := 0; i < 40; i++ { // 40 × 3.75 MiB, bounded
		appendFile(t, filepath.Join(dir, "big.log"), chunk.String())
		select {
		case at := <-returned:
			t.Logf("handler returned %v after the writes began", at.Sub(start).Round(time.Millisecond))
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case at := <-returned:
		t.Logf("handler returned %v after the writes began", at.Sub(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the handler is still blocked on a client that reads nothing")
	}
}
