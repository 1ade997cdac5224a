package logstream

import (
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Event is one message to a client, as JSON.
//
//	snapshot    forget the file: lines follow as appends (seq = number of
//	            the first line that follows)
//	append      lines became final; the live block is cleared
//	update      the live block is replaced by lines (none: cleared), after
//	            dropping the last `reopen` final lines
//	reset       the file was truncated or replaced: forget it, lines follow
//	removed     the file was deleted
//	unfollowed  the file is no longer followed (more than max_files files);
//	            its lines stay as they are
//	lagged      this client fell behind; a fresh snapshot follows
//	ping        keep-alive
//
// Rev is the event's place in the arrival order of the whole directory:
// every event a tailer publishes gets the next number, and a client
// receives them in increasing order. The appends of a snapshot carry the
// rev of their last line, so a merged snapshot and the live events after
// it read as one sequence in arrival order.
type Event struct {
	Type   string   `json:"type"`
	File   string   `json:"file,omitempty"`
	Seq    *uint64  `json:"seq,omitempty"`
	Rev    uint64   `json:"rev,omitempty"`
	Lines  []string `json:"lines,omitempty"`
	Reopen int      `json:"reopen,omitempty"`
}

// appendEvent appends e as JSON, byte for byte what encoding/json writes
// with HTML escaping off (FuzzAppendEvent checks it). The lines are HTML
// already, so \u003c for every < would only swell each span; and the
// encoder's reflection and buffer cost more than the rest of the fan-out.
func appendEvent(dst []byte, e *Event) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, e.Type)
	if e.File != "" {
		dst = append(dst, `,"file":`...)
		dst = appendJSONString(dst, e.File)
	}
	if e.Seq != nil {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, *e.Seq, 10)
	}
	if e.Rev != 0 {
		dst = append(dst, `,"rev":`...)
		dst = strconv.AppendUint(dst, e.Rev, 10)
	}
	if len(e.Lines) > 0 {
		dst = append(dst, `,"lines":[`...)
		for i, l := range e.Lines {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, l)
		}
		dst = append(dst, ']')
	}
	if e.Reopen != 0 {
		dst = append(dst, `,"reopen":`...)
		dst = strconv.AppendInt(dst, int64(e.Reopen), 10)
	}
	return append(dst, '}')
}

func encodeEvent(e Event) []byte { return appendEvent(nil, &e) }

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with SetEscapeHTML(false):
// '"', '\\' and control characters escaped, invalid UTF-8 as U+FFFD, and
// U+2028/U+2029 escaped (JavaScript string literals before ES2019 end there).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// message is an encoded event in flight, allocated once and shared by
// every subscriber's queue. rev orders it (see Event.Rev) and lets a
// subscriber skip what a snapshot it took already covers.
type message struct {
	file string
	rev  uint64
	data []byte
}

// hub fans messages out to subscribers. Publishing never blocks and never
// copies: it appends a pointer to each interested subscriber's queue and
// wakes that subscriber's writer only when its queue was empty, so the
// cost per subscriber is a lock and an append, and the writers' cost
// grows with the messages they send, not with lines × clients. A queue
// that would exceed its byte bound is dropped whole and the subscriber
// marked lagged: its writer sends one snapshot and carries on.
type hub struct {
	// pubMu orders publishing: revs are given and queued under it, so
	// every subscriber sees them in increasing order.
	pubMu sync.Mutex
	rev   atomic.Uint64

	subMu sync.Mutex
	subs  atomic.Pointer[[]*Subscription] // copy on write: publish reads it without a lock
}

// Subscription is one client's queue.
type Subscription struct {
	files map[string]bool // nil: every file, including future ones
	limit int

	mu     sync.Mutex
	queue  []*message
	spare  []*message // the other half of a double buffer: take swaps them
	queued int        // bytes in queue
	lagged bool
	// wake is signalled (capacity 1) when the queue stops being empty or
	// the subscription lags.
	wake chan struct{}
}

func (h *hub) subscribe(files []string, limit int) *Subscription {
	s := &Subscription{limit: limit, wake: make(chan struct{}, 1)}
	if len(files) > 0 {
		s.files = make(map[string]bool, len(files))
		for _, f := range files {
			s.files[f] = true
		}
	}
	h.subMu.Lock()
	defer h.subMu.Unlock()
	var next []*Subscription
	if cur := h.subs.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, s)
	h.subs.Store(&next)
	return s
}

func (h *hub) unsubscribe(s *Subscription) {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	cur := h.subs.Load()
	if cur == nil {
		return
	}
	next := make([]*Subscription, 0, len(*cur))
	for _, x := range *cur {
		if x != s {
			next = append(next, x)
		}
	}
	h.subs.Store(&next)
	s.mu.Lock()
	clear(s.queue)
	s.queue, s.queued = nil, 0
	s.mu.Unlock()
}

// publish gives each event the next rev, lets record apply it (to store
// the rev with the lines it makes final, and number them), encodes it once
// and queues it for every interested subscriber. The caller holds its
// file's lock, so a snapshot of that file sees all or none of what is
// published here.
func (h *hub) publish(file string, evs []Event, record func(ev *Event, rev uint64)) {
	if len(evs) == 0 {
		return
	}
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	subs := h.subs.Load()
	for i := range evs {
		rev := h.rev.Add(1)
		evs[i].Rev = rev
		if record != nil {
			record(&evs[i], rev)
		}
		if subs == nil || len(*subs) == 0 {
			continue
		}
		m := &message{file: file, rev: rev, data: appendEvent(make([]byte, 0, eventSizeHint(&evs[i])), &evs[i])}
		for _, s := range *subs {
			s.offer(m)
		}
	}
}

func eventSizeHint(e *Event) int {
	n := 64 + len(e.File)
	for _, l := range e.Lines {
		n += len(l) + 8
	}
	return n
}

func (s *Subscription) offer(m *message) {
	if s.files != nil && !s.files[m.file] {
		return
	}
	s.mu.Lock()
	if s.lagged {
		s.mu.Unlock()
		return
	}
	if s.queued+len(m.data) > s.limit {
		// What is queued is stale now: the resync's snapshot replaces it.
		clear(s.queue)
		s.queue, s.queued, s.lagged = s.queue[:0], 0, true
		s.mu.Unlock()
		s.signal()
		return
	}
	wasEmpty := len(s.queue) == 0
	s.queue = append(s.queue, m)
	s.queued += len(m.data)
	s.mu.Unlock()
	if wasEmpty {
		s.signal()
	}
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take hands the queued messages to the writer, who gives the slice back
// with give once written (double buffering: no allocation per batch).
func (s *Subscription) take() (msgs []*message, lagged bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lagged {
		return nil, true
	}
	msgs = s.queue
	s.queue, s.spare, s.queued = s.spare[:0], nil, 0
	return msgs, false
}

func (s *Subscription) give(msgs []*message) {
	clear(msgs) // the messages may be collected once every writer is done
	s.mu.Lock()
	if s.spare == nil && cap(msgs) <= 4096 {
		s.spare = msgs[:0]
	}
	s.mu.Unlock()
}

// resume ends a lag: messages are queued again from here on.
func (s *Subscription) resume() {
	s.mu.Lock()
	s.lagged = false
	s.mu.Unlock()
}

func (h *hub) count() int {
	if cur := h.subs.Load(); cur != nil {
		return len(*cur)
	}
	return 0
}
