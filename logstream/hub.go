package logstream

import (
	"bytes"
	"encoding/json"
	"sync"
	"sync/atomic"
)

// Event is one message to a client, as JSON.
//
//	snapshot  the file's last lines (seq = number of lines[0]) and its live block
//	append    lines became final; the live block is cleared
//	update    the live block is replaced by lines (none: cleared), after
//	          dropping the last `reopen` final lines
//	reset     the file was truncated or replaced: forget it, lines follow
//	removed   the file was deleted
//	lagged    this client fell behind; snapshots of its files follow
//	ping      keep-alive (every 15 s)
type Event struct {
	Type   string   `json:"type"`
	File   string   `json:"file,omitempty"`
	Seq    *uint64  `json:"seq,omitempty"`
	Lines  []string `json:"lines,omitempty"`
	Live   []string `json:"live,omitempty"`
	Reopen int      `json:"reopen,omitempty"`
}

// encodeEvent encodes once for every client. HTML escaping is off: the
// lines are HTML already, and \u003c for each < would swell every span.
func encodeEvent(e Event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		// Only strings and ints: encoding cannot fail.
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

// message is an encoded event in flight. rev is a service-wide counter,
// assigned under the file's lock, so a subscriber can skip events that a
// snapshot it took already covers.
type message struct {
	file string
	rev  uint64
	data []byte
}

// hub fans messages out to subscribers. Publishing never blocks: a
// subscriber whose queue is full is marked lagged and misses the message;
// its writer resynchronises it from snapshots. A slow client therefore
// costs the tailer one failed channel send, nothing more.
type hub struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
}

// Subscription is one client's view of the hub.
type Subscription struct {
	h      *hub
	files  map[string]bool // nil: every file, including future ones
	ch     chan message
	lagged atomic.Bool
	// Lagged is signalled (capacity 1) when the subscription first misses
	// a message since the last resync.
	Lagged chan struct{}
}

func (h *hub) subscribe(files []string, queue int) *Subscription {
	s := &Subscription{h: h, ch: make(chan message, queue), Lagged: make(chan struct{}, 1)}
	if len(files) > 0 {
		s.files = make(map[string]bool, len(files))
		for _, f := range files {
			s.files[f] = true
		}
	}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*Subscription]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

func (h *hub) publish(m message) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		if s.files != nil && !s.files[m.file] {
			continue
		}
		select {
		case s.ch <- m:
		default:
			if !s.lagged.Swap(true) {
				select {
				case s.Lagged <- struct{}{}:
				default:
				}
			}
		}
	}
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}
