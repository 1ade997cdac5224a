package download

import (
	"sync"
	"time"

	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/redact"
)

// Progress is reported at state changes and at most every emitEvery while
// bytes flow; the rate is taken over the last rateWindow.
const (
	emitEvery  = 250 * time.Millisecond
	rateWindow = 5 * time.Second
)

type sample struct {
	at    time.Time
	bytes int64
}

// tracker is one download's progress (a repository's files add up into
// one). It is safe for concurrent use.
type tracker struct {
	mu       sync.Mutex
	d        provstatus.Download
	emitf    func(provstatus.Download)
	now      func() time.Time
	lastEmit time.Time
	samples  []sample // bounded: one per emit within rateWindow
}

func newTracker(id string, spec Spec, emit func(provstatus.Download)) *tracker {
	t := &tracker{emitf: emit, now: time.Now}
	t.d = provstatus.Download{ID: id, Kind: KindURL, Source: redact.URLs(spec.URL), Dest: spec.Dest,
		State: provstatus.Pending, ETASeconds: -1}
	if tg, err := Classify(spec.URL); err == nil {
		t.d.Kind = tg.Kind
	}
	t.emitLocked()
	return t
}

func (t *tracker) update(f func(d *provstatus.Download)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.d)
	t.emitLocked()
}

func (t *tracker) running()         { t.update(func(d *provstatus.Download) { d.State = provstatus.Running }) }
func (t *tracker) setDest(p string) { t.update(func(d *provstatus.Download) { d.Dest = p }) }
func (t *tracker) addTotal(n int64) { t.update(func(d *provstatus.Download) { d.Total += n }) }
func (t *tracker) markResumed()     { t.update(func(d *provstatus.Download) { d.Resumed = true }) }

// add counts n more bytes on disk (negative when a restart drops a partial
// file) and reports at most every emitEvery.
func (t *tracker) add(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.d.Bytes += n
	if t.now().Sub(t.lastEmit) >= emitEvery {
		t.emitLocked()
	}
}

func (t *tracker) finish(state, errText string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.d.State, t.d.Error = state, errText
	t.d.RateBps, t.d.ETASeconds = 0, -1
	if state == provstatus.Done {
		t.d.ETASeconds = 0
		if t.d.Total < t.d.Bytes {
			t.d.Total = t.d.Bytes
		}
	}
	t.emitf(t.d)
}

// emitLocked computes the rate over the recent samples and reports.
func (t *tracker) emitLocked() {
	now := t.now()
	t.lastEmit = now
	t.samples = append(t.samples, sample{now, t.d.Bytes})
	for len(t.samples) > 2 && (now.Sub(t.samples[0].at) > rateWindow || now.Before(t.samples[0].at)) {
		t.samples = t.samples[1:]
	}
	t.d.RateBps, t.d.ETASeconds = 0, -1
	if first := t.samples[0]; len(t.samples) > 1 && now.Sub(first.at) > 0 {
		rate := float64(t.d.Bytes-first.bytes) / now.Sub(first.at).Seconds()
		if rate > 0 {
			t.d.RateBps = rate
			if t.d.Total > 0 && t.d.Total >= t.d.Bytes {
				t.d.ETASeconds = float64(t.d.Total-t.d.Bytes) / rate
			}
		}
	}
	t.emitf(t.d)
}
