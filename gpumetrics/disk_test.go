package gpumetrics

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestDiskArithmeticIsDF: the share shown is used out of used + available,
// rounded up, as df prints Use%. The numbers are the issue's: a disk of
// 252 GiB with 19.4 GiB used and 72 GiB available read 7.7 % full (used
// over total) where df said 22 %.
func TestDiskArithmeticIsDF(t *testing.T) {
	const gib = 1 << 30
	const bs = 4096
	blocks, avail := uint64(252*gib/bs), uint64(72*gib/bs)
	used := uint64(194 * gib / 10 / bs)
	d := dfView(DiskPath{"root", "/"}, blocks, blocks-used, avail, bs)
	if d.UsedPercent != 22 || d.UsableBytes != (used+avail)*bs || d.UsedBytes != used*bs || d.TotalBytes != blocks*bs {
		t.Fatalf("%+v", d)
	}
	cases := []struct {
		blocks, free, avail uint64
		pct                 int
	}{
		{100, 100, 100, 0}, // empty
		{100, 0, 0, 100},   // full
		{100, 50, 40, 56},  // 50/90 = 55.6 → 56, as df rounds up
		{100, 60, 60, 40},  // no reserve: the same as used/total
		{0, 0, 0, 0},       // nothing at all (a pseudo filesystem)
		{100, 120, 120, 0}, // free beyond total (a racing statfs) is clamped
	}
	for _, c := range cases {
		if got := dfView(DiskPath{}, c.blocks, c.free, c.avail, 1).UsedPercent; got != c.pct {
			t.Errorf("blocks %d free %d avail %d: %d%%, want %d%%", c.blocks, c.free, c.avail, got, c.pct)
		}
	}
}

// TestDiskUsageMatchesDF compares the reading of / and of the test's temp
// directory with df on this machine (its / has blocks reserved: used over
// total is a third of df's Use%). Other processes write meanwhile, so the
// bytes must agree within a margin and the percentage within one point.
func TestDiskUsageMatchesDF(t *testing.T) {
	if _, err := exec.LookPath("df"); err != nil {
		t.Skip("no df on this machine")
	}
	for _, path := range []string{"/", t.TempDir()} {
		disks, errs := diskUsage([]DiskPath{{"d", path}})
		if len(errs) != 0 || len(disks) != 1 {
			t.Fatalf("%s: %v %v", path, disks, errs)
		}
		out, err := exec.Command("df", "-B1", "--output=size,used,avail,pcent", path).Output()
		if err != nil {
			t.Skipf("df -B1 --output (GNU coreutils) failed: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		f := strings.Fields(lines[len(lines)-1])
		if len(f) != 4 {
			t.Fatalf("df output %q", out)
		}
		size, _ := strconv.ParseUint(f[0], 10, 64)
		used, _ := strconv.ParseUint(f[1], 10, 64)
		avail, _ := strconv.ParseUint(f[2], 10, 64)
		pct, _ := strconv.Atoi(strings.TrimSuffix(f[3], "%"))
		d := disks[0]
		const margin = 512 << 20
		near := func(a, b uint64) bool { return max(a, b)-min(a, b) <= margin }
		if d.TotalBytes != size || !near(d.UsedBytes, used) || !near(d.AvailableBytes, avail) || !near(d.UsableBytes, used+avail) ||
			d.UsedPercent < pct-1 || d.UsedPercent > pct+1 {
			t.Errorf("%s: ours %+v\n df: size %d used %d avail %d use%% %d", path, d, size, used, avail, pct)
		}
		t.Logf("%s: df %d%% used, %d bytes available; ours %d%%, %d of %d usable bytes used (%.1f%% of the total)",
			path, pct, avail, d.UsedPercent, d.UsedBytes, d.UsableBytes, 100*float64(d.UsedBytes)/float64(d.TotalBytes))
	}
}
