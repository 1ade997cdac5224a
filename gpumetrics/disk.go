package gpumetrics

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// diskUsage reports the filesystems holding paths as df does: total and
// available in fragment-size units, used = total - free, and the share used
// out of what this container can fill (used + available), rounded up. The
// blocks reserved for root, and space a quota or other users hold, are
// neither used by us nor available to us: measured against the total, a
// disk with 72 GiB left read 7.7 % full where df said 22 %. A path on the
// same filesystem (device) as an earlier one is skipped, so a workspace
// that is just a directory on / is not reported twice. An empty path is
// skipped.
func diskUsage(paths []DiskPath) ([]Disk, []string) {
	disks := make([]Disk, 0, len(paths))
	var errs []string
	seen := map[uint64]bool{}
	for _, p := range paths {
		if p.Path == "" {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(p.Path, &st); err != nil {
			errs = append(errs, fmt.Sprintf("disk %s (%s): %v", p.Label, p.Path, err))
			continue
		}
		if seen[st.Dev] {
			continue
		}
		seen[st.Dev] = true
		var fs unix.Statfs_t
		if err := unix.Statfs(p.Path, &fs); err != nil {
			errs = append(errs, fmt.Sprintf("disk %s (%s): %v", p.Label, p.Path, err))
			continue
		}
		bsize := uint64(fs.Frsize)
		if bsize == 0 {
			bsize = uint64(fs.Bsize)
		}
		disks = append(disks, dfView(p, fs.Blocks, fs.Bfree, fs.Bavail, bsize))
	}
	return disks, errs
}

// dfView computes a Disk from statfs figures (in blocks of bsize bytes)
// with df's arithmetic: used = total - free; usable = used + available;
// used_percent = ceil(100 * used / usable).
func dfView(p DiskPath, blocks, free, avail, bsize uint64) Disk {
	used := blocks - min(free, blocks)
	d := Disk{
		Label:          p.Label,
		Path:           p.Path,
		TotalBytes:     blocks * bsize,
		UsedBytes:      used * bsize,
		AvailableBytes: avail * bsize,
		UsableBytes:    (used + avail) * bsize,
	}
	if used+avail > 0 {
		d.UsedPercent = int((used*100 + used + avail - 1) / (used + avail))
	}
	return d
}
