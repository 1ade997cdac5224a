package gpumetrics

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// copyTree copies a fixture root so a test can change counters in it.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestSystemReaderFixtures(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		fixture, counterFile, before, after string
		wantCPUSource, wantMemSource        string
		wantCores, wantPct                  float64
		wantUsed, wantLimit                 uint64
	}{
		{
			fixture: "cgroup2", counterFile: "sys/fs/cgroup/docker/abc/cpu.stat",
			after:         "usage_usec 6000000\n", // +1 s of CPU in 1 s on a 2-core quota
			wantCPUSource: "cgroup2", wantCores: 2, wantPct: 50,
			wantMemSource: "cgroup2", wantUsed: 2 * gib, wantLimit: 8 * gib,
		},
		{
			fixture: "cgroup1", counterFile: "sys/fs/cgroup/cpu,cpuacct/cpuacct.usage",
			after:         "3750000000\n", // +0.75 s in 1 s on 1.5 cores
			wantCPUSource: "cgroup1", wantCores: 1.5, wantPct: 50,
			// limit_in_bytes is the "unlimited" sentinel: MemTotal instead.
			wantMemSource: "cgroup1", wantUsed: 1536 << 20, wantLimit: 16384000 * 1024,
		},
		{
			fixture: "procfs", counterFile: "proc/stat",
			after:         "cpu  1100 50 350 8200 200 0 0 0 0 0\n", // 200 busy of 400 jiffies
			wantCPUSource: "proc", wantCores: 4, wantPct: 50,
			wantMemSource: "proc", wantUsed: 3000000 * 1024, wantLimit: 4000000 * 1024,
		},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			root := copyTree(t, filepath.Join("testdata", tc.fixture))
			now := time.Unix(1000, 0)
			r := &SystemReader{Root: root, NumCPU: 4, Now: func() time.Time { return now }}
			s := r.Read()
			if len(s.Errors) != 0 {
				t.Fatalf("errors: %v", s.Errors)
			}
			if s.CPUPercent != nil {
				t.Errorf("first reading has nothing to compare with, got %v%%", *s.CPUPercent)
			}
			if s.CPUSource != tc.wantCPUSource || *s.CPULimitCores != tc.wantCores {
				t.Errorf("cpu source %q cores %v, want %q %v", s.CPUSource, *s.CPULimitCores, tc.wantCPUSource, tc.wantCores)
			}
			if s.MemorySource != tc.wantMemSource || *s.MemoryUsedBytes != tc.wantUsed || *s.MemoryLimitBytes != tc.wantLimit {
				t.Errorf("memory %q %d/%d, want %q %d/%d", s.MemorySource, *s.MemoryUsedBytes, *s.MemoryLimitBytes, tc.wantMemSource, tc.wantUsed, tc.wantLimit)
			}
			if err := os.WriteFile(filepath.Join(root, tc.counterFile), []byte(tc.after), 0o644); err != nil {
				t.Fatal(err)
			}
			now = now.Add(time.Second)
			s = r.Read()
			if s.CPUPercent == nil || *s.CPUPercent != tc.wantPct {
				t.Errorf("cpu percent %v, want %v", s.CPUPercent, tc.wantPct)
			}
		})
	}
}

// TestSystemReaderHostPathFallback: /proc/self/cgroup names a host path
// that the container's cgroup mount does not have; the mount root is used.
func TestSystemReaderHostPathFallback(t *testing.T) {
	root := copyTree(t, "testdata/cgroup1")
	if err := os.WriteFile(filepath.Join(root, "proc/self/cgroup"), []byte("4:memory:/process_api/1ec1\n3:cpu,cpuacct:/kubepods/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := (&SystemReader{Root: root, NumCPU: 2}).Read()
	if s.MemorySource != "cgroup1" || s.CPUSource != "cgroup1" || *s.CPULimitCores != 1.5 {
		t.Errorf("got %+v", s)
	}
}

func TestSystemReaderThisMachine(t *testing.T) {
	r := &SystemReader{Root: "/", NumCPU: 2, Disks: []DiskPath{{"root", "/"}, {"workspace", t.TempDir()}, {"again", "/"}}}
	s := r.Read()
	if s.MemoryUsedBytes == nil || *s.MemoryLimitBytes == 0 || s.CPULimitCores == nil {
		t.Fatalf("figures missing: %+v", s)
	}
	if len(s.Disks) == 0 || s.Disks[0].Label != "root" || s.Disks[0].TotalBytes == 0 {
		t.Fatalf("disks: %+v", s.Disks)
	}
	for _, d := range s.Disks[1:] {
		if d.Label == "again" {
			t.Errorf("a path on an already reported filesystem must be skipped: %+v", s.Disks)
		}
	}
	t.Logf("cpu %s, memory %s %d/%d, disks %+v", s.CPUSource, s.MemorySource, *s.MemoryUsedBytes, *s.MemoryLimitBytes, s.Disks)
}

func TestDiskUsageErrors(t *testing.T) {
	disks, errs := diskUsage([]DiskPath{{"workspace", "/nonexistent/workspace"}, {"empty", ""}})
	if len(disks) != 0 || len(errs) != 1 {
		t.Fatalf("disks %v errs %v", disks, errs)
	}
}

func TestParseCPUMax(t *testing.T) {
	for in, want := range map[string]struct {
		cores float64
		ok    bool
		err   bool
	}{
		"max 100000\n":    {0, false, false},
		"50000 100000":    {0.5, true, false},
		"400000 100000\n": {4, true, false},
		"150000":          {1.5, true, false},
		"":                {err: true},
		"x 100000":        {err: true},
		"100 0":           {err: true},
		"0 100000":        {err: true},
		"1 2 3":           {err: true},
	} {
		cores, ok, err := parseCPUMax([]byte(in))
		if (err != nil) != want.err || ok != want.ok || cores != want.cores {
			t.Errorf("%q: got %v %v %v", in, cores, ok, err)
		}
	}
}

func TestParseCFSQuota(t *testing.T) {
	if _, ok, err := parseCFSQuota([]byte("-1\n"), []byte("100000\n")); ok || err != nil {
		t.Errorf("-1 is no limit: %v %v", ok, err)
	}
	if c, ok, err := parseCFSQuota([]byte("250000"), []byte("100000")); !ok || err != nil || c != 2.5 {
		t.Errorf("got %v %v %v", c, ok, err)
	}
	if _, _, err := parseCFSQuota([]byte("100"), []byte("0")); err == nil {
		t.Error("zero period must fail")
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]uint64{"max\n": 0, "9223372036854771712": 0, "18446744073709551615": 0, "0": 0, "1073741824\n": 1 << 30, "junk": 0} {
		got, ok := parseLimit([]byte(in))
		if got != want || ok != (want != 0) {
			t.Errorf("%q: got %d %v", in, got, ok)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	v2, v1 := parseProcCgroup([]byte("12:cpu,cpuacct:/docker/x\n11:memory:/docker/x/../y\n1:name=systemd:/init.scope\n0::/user.slice\nbad line\n3:pids:relative\n"))
	if v2 != "/user.slice" {
		t.Errorf("v2 %q", v2)
	}
	want := map[string]string{"cpu": "/docker/x", "cpuacct": "/docker/x", "memory": "/docker/y", "name=systemd": "/init.scope"}
	if !reflect.DeepEqual(v1, want) {
		t.Errorf("v1 %v", v1)
	}
}

func TestParseMeminfoOldKernel(t *testing.T) {
	total, avail, err := parseMeminfo([]byte("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n"))
	if err != nil || total != 1000*1024 || avail != 400*1024 {
		t.Errorf("got %d %d %v", total, avail, err)
	}
	if _, _, err := parseMeminfo([]byte("MemFree: 1 kB\n")); err == nil {
		t.Error("no MemTotal must fail")
	}
}

func TestParseProcStat(t *testing.T) {
	busy, total, err := parseProcStat([]byte("cpu  100 0 100 800 0 0 0 0 0 0\n"))
	if err != nil || busy != 2 || total != 10 {
		t.Errorf("got %v %v %v", busy, total, err)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5\n", "cpu  1 x 3 4 5\n"} {
		if _, _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
}
