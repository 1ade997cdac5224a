package gpumetrics

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// diskUsage reports the filesystems holding paths, df-style: total and
// available in fragment-size units, used = total - free. A path on the same
// filesystem (device) as an earlier one is skipped, so a workspace that is
// just a directory on / is not reported twice. An empty path is skipped.
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
		disks = append(disks, Disk{
			Label:          p.Label,
			Path:           p.Path,
			TotalBytes:     fs.Blocks * bsize,
			UsedBytes:      (fs.Blocks - min(fs.Bfree, fs.Blocks)) * bsize,
			AvailableBytes: fs.Bavail * bsize,
		})
	}
	return disks, errs
}
