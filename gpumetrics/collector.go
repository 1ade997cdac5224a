package gpumetrics

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// GPUSource reads every GPU once per call. The collector calls Sweep and
// Close from one goroutine at a time, never concurrently, so a source needs
// no locking of its own. Sweep must not panic on a missing driver: it
// returns a report with Available false and the reason.
type GPUSource interface {
	Sweep(ctx context.Context) GPUReport
	// Close releases the library (NVML shutdown). It is called once, after
	// the last Sweep has returned.
	Close() error
}

// SystemSource reads the system figures; *SystemReader is the real one.
type SystemSource interface {
	Read() System
}

// Sources are what a Collector reads: the GPUs, the system figures, the
// clock and the host name reported with every sample.
type Sources struct {
	GPU    GPUSource
	System SystemSource
	// Now is the clock; tests inject a fixed one. Default: time.Now.
	Now func() time.Time
	// Hostname is reported with each sample. Default: os.Hostname().
	Hostname string
}

// Sample is a published snapshot with its renderings, each built once on
// first use and then served to every request (a hundred dashboards cost one
// encoding per sweep).
type Sample struct {
	Snapshot *Snapshot

	jsonOnce sync.Once
	json     []byte
	promOnce sync.Once
	prom     []byte
}

// JSON returns the snapshot as indented JSON (cached).
func (s *Sample) JSON() []byte {
	s.jsonOnce.Do(func() { s.json = RenderJSON(s.Snapshot) })
	return s.json
}

// Prometheus returns the snapshot in the Prometheus text format (cached).
func (s *Sample) Prometheus() []byte {
	s.promOnce.Do(func() { s.prom = RenderPrometheus(s.Snapshot) })
	return s.prom
}

// Collector samples in the background and serves the latest sample. The
// sampler goroutine starts on the first Latest call, not at construction, so
// that building a Collector (Caddy's Provision, `caddy validate`) does no
// I/O and cannot hang on a driver. It runs until Close.
type Collector struct {
	interval, timeout time.Duration
	src               Sources
	log               *zap.Logger
	ctx               context.Context
	cancel            context.CancelFunc

	startOnce sync.Once
	started   atomic.Bool
	done      chan struct{} // closed when the sampler goroutine ends
	first     chan struct{} // closed at the first publish
	firstOnce sync.Once
	latest    atomic.Pointer[Sample]
	sweeps    atomic.Uint64

	// Owned by the sampler goroutine.
	inflight chan *Snapshot
}

// NewCollector returns a collector sampling src at cfg's Interval (zero
// settings take the defaults; the caller validates cfg). log receives the
// sampler's warnings; nil discards them. Nothing runs until Latest is
// called.
func NewCollector(cfg Config, src Sources, log *zap.Logger) *Collector {
	cfg = cfg.WithDefaults()
	if src.Now == nil {
		src.Now = time.Now
	}
	if src.Hostname == "" {
		src.Hostname, _ = os.Hostname()
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Collector{
		interval: cfg.Interval.Std(), timeout: cfg.Timeout.Std(), src: src, log: log, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), first: make(chan struct{}),
	}
}

// Sweeps reports how many sweeps have been started (for tests and metrics).
func (c *Collector) Sweeps() uint64 { return c.sweeps.Load() }

// Latest returns the latest sample. On the very first call it starts the
// sampler and waits (at most Timeout, or until ctx ends) for the first
// sweep; if that does not arrive, it returns an "unavailable" sample rather
// than blocking the request.
func (c *Collector) Latest(ctx context.Context) *Sample {
	if s := c.latest.Load(); s != nil {
		return s
	}
	c.start()
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-c.first:
	case <-t.C:
	case <-ctx.Done():
	case <-c.ctx.Done():
	}
	if s := c.latest.Load(); s != nil {
		return s
	}
	return &Sample{Snapshot: &Snapshot{
		SampledAt: c.src.Now().UTC(), Stale: true, Hostname: c.src.Hostname,
		StaleReason: "first sweep has not finished yet",
		GPUReport:   GPUReport{Reason: "first sweep has not finished yet", ReasonCode: ReasonNotSampled, GPUs: []GPU{}},
		System:      System{Disks: []Disk{}},
	}}
}

func (c *Collector) start() {
	c.startOnce.Do(func() {
		if c.ctx.Err() != nil {
			close(c.done)
			return
		}
		c.started.Store(true)
		go c.run()
	})
}

// Close stops the sampler, waits for it (bounded by Timeout plus a margin)
// and shuts the GPU source down. Safe to call more than once and without a
// prior Latest.
func (c *Collector) Close() error {
	c.cancel()
	c.startOnce.Do(func() { close(c.done) }) // never started: nothing to wait for
	select {
	case <-c.done:
	case <-time.After(c.timeout + time.Second):
		c.log.Warn("gpu metrics sampler did not stop in time")
	}
	return nil
}

// Destruct lets a Collector live in a caddy.UsagePool.
func (c *Collector) Destruct() error { return c.Close() }

func (c *Collector) run() {
	defer close(c.done)
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("gpu metrics sampler panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		}
	}()
	defer c.closeSource()

	ticker := time.NewTicker(c.interval)
	defer ticker.Stop()
	c.tick()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-ticker.C:
			c.tick()
		}
	}
}

// closeSource shuts the GPU source down once no sweep is running. A sweep
// stuck in the driver past Timeout keeps the library: shutting NVML down
// under a running call is undefined, and the process is ending or
// reloading anyway.
func (c *Collector) closeSource() {
	if c.src.GPU == nil {
		return
	}
	if c.inflight != nil {
		select {
		case <-c.inflight:
		case <-time.After(c.timeout):
			c.log.Warn("gpu sweep still running at shutdown; leaving the GPU library initialised")
			return
		}
	}
	if err := c.src.GPU.Close(); err != nil {
		c.log.Warn("closing gpu source", zap.Error(err))
	}
}

// tick starts a sweep unless one is still running, then waits up to Timeout
// for it and publishes the result, or republishes the previous snapshot
// marked stale.
func (c *Collector) tick() {
	if c.inflight == nil {
		ch := make(chan *Snapshot, 1)
		c.inflight = ch
		c.sweeps.Add(1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					c.log.Error("gpu sweep panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
					ch <- nil
				}
			}()
			ch <- c.sweep()
		}()
	}
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case snap := <-c.inflight:
		c.inflight = nil
		if snap != nil {
			c.publish(snap)
			return
		}
		c.publishStale("the last sweep failed")
	case <-t.C:
		c.publishStale(fmt.Sprintf("sweep still running after %v; serving the previous sample", c.timeout))
	case <-c.ctx.Done():
	}
}

// sweep reads everything once. It runs in its own goroutine and touches
// only the sources, which the collector never calls concurrently.
func (c *Collector) sweep() *Snapshot {
	start := c.src.Now()
	snap := &Snapshot{SampledAt: start.UTC(), Hostname: c.src.Hostname}
	if c.src.GPU != nil {
		snap.GPUReport = c.src.GPU.Sweep(c.ctx)
	} else {
		snap.GPUReport = GPUReport{Reason: "no GPU source configured", ReasonCode: ReasonNoSource}
	}
	if snap.GPUs == nil {
		snap.GPUs = []GPU{}
	}
	if c.src.System != nil {
		snap.System = c.src.System.Read()
	}
	if snap.System.Disks == nil {
		snap.System.Disks = []Disk{}
	}
	snap.SweepSeconds = c.src.Now().Sub(start).Seconds()
	return snap
}

func (c *Collector) publish(s *Snapshot) {
	c.latest.Store(&Sample{Snapshot: s})
	c.firstOnce.Do(func() { close(c.first) })
}

func (c *Collector) publishStale(reason string) {
	var s Snapshot
	if prev := c.latest.Load(); prev != nil {
		if prev.Snapshot.Stale && prev.Snapshot.StaleReason == reason {
			return // already served as stale for this reason; log once
		}
		s = *prev.Snapshot // shallow copy: slices are shared read-only
	} else {
		s = Snapshot{
			SampledAt: c.src.Now().UTC(), Hostname: c.src.Hostname,
			GPUReport: GPUReport{Reason: reason, ReasonCode: ReasonSweepFailed, GPUs: []GPU{}},
			System:    System{Disks: []Disk{}},
		}
	}
	s.Stale, s.StaleReason = true, reason
	c.log.Warn("gpu metrics sample is stale", zap.String("reason", reason))
	c.publish(&s)
}
