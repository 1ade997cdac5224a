package gpumetrics

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/internal/testwait"
)

// stubGPU is a GPUSource whose sweeps can be blocked, like a stuck driver.
type stubGPU struct {
	sweeps atomic.Int64
	closes atomic.Int64
	block  chan struct{} // when non-nil, Sweep waits on it
	mu     sync.Mutex
}

func (s *stubGPU) Sweep(ctx context.Context) GPUReport {
	n := s.sweeps.Add(1)
	s.mu.Lock()
	b := s.block
	s.mu.Unlock()
	if b != nil {
		<-b
	}
	return GPUReport{Available: true, Backend: "stub", GPUs: []GPU{{Index: 0, Name: "stub", TemperatureC: Ptr(float64(n))}}}
}

func (s *stubGPU) Close() error { s.closes.Add(1); return nil }

type stubSystem struct{}

func (stubSystem) Read() System { return System{MemoryUsedBytes: Ptr[uint64](1)} }

func TestCollectorLazyStartAndSharedSample(t *testing.T) {
	gpu := &stubGPU{}
	c := NewCollector(Config{Interval: hour}, Sources{GPU: gpu, System: stubSystem{}, Hostname: "h"}, nil)
	defer c.Close()
	if gpu.sweeps.Load() != 0 || c.Sweeps() != 0 {
		t.Fatal("a collector must not sweep before the first request")
	}
	var wg sync.WaitGroup
	samples := make([]*Sample, 100)
	for i := range samples {
		wg.Go(func() { samples[i] = c.Latest(context.Background()) })
	}
	wg.Wait()
	for _, s := range samples {
		if s.Snapshot.Stale || !s.Snapshot.Available || s != samples[0] {
			t.Fatalf("every request must read the one shared sample: %+v", s.Snapshot)
		}
	}
	if n := gpu.sweeps.Load(); n != 1 {
		t.Errorf("100 requests within one interval cost %d sweeps, want 1", n)
	}
	if a, b := samples[0].JSON(), samples[1].JSON(); &a[0] != &b[0] {
		t.Error("JSON must be rendered once per sample")
	}
}

func TestCollectorStuckSweepServesStale(t *testing.T) {
	// In a synctest bubble: the sleeps, intervals and timeouts run on the
	// bubble's fake clock, so "no sweep started while stuck" is exact.
	synctest.Test(t, func(t *testing.T) {
		gpu := &stubGPU{}
		c := NewCollector(Config{Interval: ms(20), Timeout: ms(30)}, Sources{GPU: gpu, System: stubSystem{}}, nil)
		defer c.Close()
		first := c.Latest(context.Background())
		if first.Snapshot.Stale {
			t.Fatal("first sample stale")
		}
		release := make(chan struct{})
		gpu.mu.Lock()
		gpu.block = release
		gpu.mu.Unlock()

		// Wait until a stale sample is published; requests never block meanwhile.
		var s *Sample
		testwait.Poll(5*time.Second, 5*time.Millisecond, func() bool {
			t0 := time.Now()
			s = c.Latest(context.Background())
			// Blocked would mean for good (the sweep is stuck until released);
			// the bound only has to be far below that.
			if d := time.Since(t0); d > time.Second {
				t.Fatalf("Latest blocked %v behind a stuck sweep", d)
			}
			return s.Snapshot.Stale
		})
		if !s.Snapshot.Stale || s.Snapshot.StaleReason == "" || !s.Snapshot.Available || len(s.Snapshot.GPUs) != 1 {
			t.Fatalf("want the previous sample marked stale, got %+v", s.Snapshot)
		}
		var doc map[string]any
		if err := json.Unmarshal(s.JSON(), &doc); err != nil || doc["stale"] != true {
			t.Fatalf("stale JSON: %s", s.JSON())
		}
		stuckAt := gpu.sweeps.Load()
		time.Sleep(100 * time.Millisecond) // fake clock: five intervals pass while stuck
		if n := gpu.sweeps.Load(); n != stuckAt {
			t.Errorf("a stuck sweep must not be joined by new ones: %d sweeps started while stuck", n-stuckAt)
		}
		gpu.mu.Lock()
		gpu.block = nil
		gpu.mu.Unlock()
		close(release)
		testwait.Eventually(t, 5*time.Second, 5*time.Millisecond, "recovery after the stuck sweep returned", func() bool {
			return !c.Latest(context.Background()).Snapshot.Stale
		})
	})
}

func TestCollectorFirstSweepStuck(t *testing.T) {
	gpu := &stubGPU{block: make(chan struct{})}
	c := NewCollector(Config{Interval: hour, Timeout: ms(20)}, Sources{GPU: gpu}, nil)
	s := c.Latest(context.Background())
	if !s.Snapshot.Stale || s.Snapshot.Available || s.Snapshot.Reason == "" || s.Snapshot.GPUs == nil {
		t.Fatalf("first sweep stuck: %+v", s.Snapshot)
	}
	close(gpu.block)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if gpu.closes.Load() != 1 {
		t.Errorf("source closed %d times", gpu.closes.Load())
	}
}

func TestCollectorClose(t *testing.T) {
	// In a synctest bubble: "no sweep after Close" is checked over five
	// intervals of the bubble's fake clock.
	synctest.Test(t, func(t *testing.T) {
		gpu := &stubGPU{}
		c := NewCollector(Config{Interval: ms(10)}, Sources{GPU: gpu}, nil)
		c.Close() // never started: returns at once, source untouched
		if gpu.closes.Load() != 0 || gpu.sweeps.Load() != 0 {
			t.Fatal("closing an unstarted collector must not touch the source")
		}
		s := c.Latest(context.Background())
		if s.Snapshot.Available || gpu.sweeps.Load() != 0 {
			t.Fatal("a closed collector must not start")
		}

		gpu = &stubGPU{}
		c = NewCollector(Config{Interval: ms(10)}, Sources{GPU: gpu}, nil)
		c.Latest(context.Background())
		c.Close()
		c.Close()
		if gpu.closes.Load() != 1 {
			t.Fatalf("source closed %d times", gpu.closes.Load())
		}
		n := gpu.sweeps.Load()
		time.Sleep(50 * time.Millisecond) // fake clock: five intervals with nothing to sweep
		if gpu.sweeps.Load() != n {
			t.Error("sweeps continued after Close")
		}
	})
}

func TestCollectorFakeClock(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewCollector(Config{}, Sources{GPU: &stubGPU{}, Now: func() time.Time { return at }, Hostname: "box"}, nil)
	defer c.Close()
	s := c.Latest(context.Background()).Snapshot
	if !s.SampledAt.Equal(at) || s.SweepSeconds != 0 || s.Hostname != "box" {
		t.Fatalf("clock not injected: %+v", s)
	}
}

// BenchmarkCollectorSweepSystem is one sweep without NVML: the
// collector's own overhead plus a system read of this machine.
func BenchmarkCollectorSweepSystem(b *testing.B) {
	c := NewCollector(Config{}, Sources{GPU: &stubGPU{}, System: &SystemReader{Root: "/", NumCPU: 2, Disks: []DiskPath{{"root", "/"}}}}, nil)
	b.ReportAllocs()
	for b.Loop() {
		c.sweep()
	}
}

const hour = confdecl.Duration(time.Hour)

// ms is n milliseconds as a setting.
func ms(n int) confdecl.Duration { return confdecl.Duration(time.Duration(n) * time.Millisecond) }
