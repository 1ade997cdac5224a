package logstream

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
)

func stdJSON(t testing.TB, e Event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	seq := uint64(7)
	for _, e := range []Event{
		{Type: "ping"},
		{Type: "append", File: "a.log", Seq: &seq, Rev: 9, Lines: []string{`<span class="term-fg32">ok</span> &lt;x&gt;`, "tab\there", "é ✓", "\x00\x1f\u2028\u2029\"\\"}},
		{Type: "update", File: "a.log", Reopen: 3},
		{Type: "snapshot", File: "b.log", Seq: new(uint64)},
		{Type: "update", File: "bad\xffname.log", Lines: []string{"\xff\xfe"}},
	} {
		if got, want := encodeEvent(e), stdJSON(t, e); !bytes.Equal(got, want) {
			t.Errorf("encodeEvent\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendEvent(f *testing.F) {
	f.Add("append", "a.log", "x<y>", uint64(1), uint64(2), 0)
	f.Add("update", "\xff", "\u2028\x7f\x00\"", uint64(0), uint64(0), 5)
	f.Fuzz(func(t *testing.T, typ, file, line string, seq, rev uint64, reopen int) {
		e := Event{Type: typ, File: file, Rev: rev, Lines: []string{line, line + "!"}, Reopen: reopen}
		if seq%2 == 0 {
			e.Seq = &seq
		}
		got := encodeEvent(e)
		if want := stdJSON(t, e); !bytes.Equal(got, want) {
			t.Fatalf("encodeEvent\n got %q\nwant %q", got, want)
		}
		var back Event
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q does not parse: %v", got, err)
		}
	})
}

// BenchmarkFanOut publishes one event (one line, as a busy log writes them)
// to N subscribers: the per-event cost of the hub, which must grow by a
// lock and an append per subscriber, never by an encoding or a copy.
// Writers drain the queues between events (as they do every flush
// interval), so the queues stay short.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 50, 200} {
		b.Run("subscribers="+strconv.Itoa(n), func(b *testing.B) {
			var h hub
			subs := make([]*Subscription, n)
			for i := range subs {
				subs[i] = h.subscribe(nil, 1<<20)
			}
			line := []string{`INFO:     127.0.0.1:52344 - "GET /api/v1/models HTTP/1.1" 200 OK`}
			evs := make([]Event, 1)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				evs[0] = Event{Type: "append", File: "app.log", Lines: line}
				h.publish("app.log", evs, nil)
				if i++; i%64 == 0 {
					for _, s := range subs {
						msgs, _ := s.take()
						s.give(msgs)
					}
				}
			}
		})
	}
}

// BenchmarkEncodeEvent is the once-per-event encoding every subscriber
// shares.
func BenchmarkEncodeEvent(b *testing.B) {
	seq := uint64(123456)
	e := Event{Type: "append", File: "app.log", Seq: &seq, Rev: 987654, Lines: []string{`<span class="term-fg32">INFO</span>:     127.0.0.1:52344 - &quot;GET &#47;api&#47;v1&#47;models HTTP&#47;1.1&quot; 200 OK`}}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = appendEvent(buf[:0], &e)
	}
}
