package gpumetrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// noLimit is the smallest value treated as "no memory limit". cgroup v1
// reports an unlimited memory.limit_in_bytes as PAGE_COUNTER_MAX pages
// (9223372036854771712 with 4 KiB pages); anything this large is no limit.
const noLimit = uint64(1) << 62

// SystemReader reads CPU, memory and disk figures the way a container sees
// them. It keeps the previous CPU reading to turn counters into a
// percentage, so one reader must not be used by two goroutines at once (the
// collector's single sweep goroutine owns it).
type SystemReader struct {
	// Root is prepended to /proc and /sys paths ("/" in production, a
	// fixture directory in tests).
	Root string
	// Disks are the paths whose filesystems are reported: "/" and the
	// workspace. A path on the same filesystem as an earlier one is skipped.
	Disks []DiskPath
	// NumCPU is the CPU count used when no quota is set.
	NumCPU int
	// Now is the clock used to time CPU counters.
	Now func() time.Time

	prev cpuReading
}

// DiskPath names a path to report disk usage for.
type DiskPath struct {
	Label string
	Path  string
}

// cpuReading is a cumulative CPU counter at a moment.
type cpuReading struct {
	source string
	// usedSec is CPU time used; totalSec, for /proc/stat, the CPU time that
	// passed (busy + idle) so that the ratio needs no wall clock.
	usedSec, totalSec float64
	at                time.Time
	ok                bool
}

// Read returns the current system figures. Errors are recorded in
// System.Errors; Read never fails as a whole.
func (r *SystemReader) Read() System {
	var s System
	cg := r.detectCgroup()

	cur, limit, err := r.readCPU(cg)
	if err != nil {
		s.Errors = append(s.Errors, "cpu: "+err.Error())
	} else {
		s.CPUSource = cur.source
		s.CPULimitCores = Ptr(limit)
		if pct, ok := cpuPercent(r.prev, cur, limit); ok {
			s.CPUPercent = Ptr(pct)
		}
		r.prev = cur
	}

	used, lim, src, err := r.readMemory(cg)
	if err != nil {
		s.Errors = append(s.Errors, "memory: "+err.Error())
	} else {
		s.MemoryUsedBytes, s.MemoryLimitBytes, s.MemorySource = Ptr(used), Ptr(lim), src
	}

	disks, errs := diskUsage(r.Disks)
	s.Disks = disks
	s.Errors = append(s.Errors, errs...)
	return s
}

// cpuPercent turns two readings into a percentage of limit cores.
func cpuPercent(prev, cur cpuReading, limit float64) (float64, bool) {
	if !prev.ok || prev.source != cur.source || limit <= 0 {
		return 0, false
	}
	used := cur.usedSec - prev.usedSec
	if used < 0 {
		return 0, false // counter reset (cgroup recreated)
	}
	var pct float64
	if cur.source == "proc" {
		total := cur.totalSec - prev.totalSec
		if total <= 0 {
			return 0, false
		}
		pct = 100 * used / total
	} else {
		wall := cur.at.Sub(prev.at).Seconds()
		if wall <= 0 {
			return 0, false
		}
		pct = 100 * used / (wall * limit)
	}
	return math.Min(math.Max(pct, 0), 100), true
}

// cgroupInfo says which cgroup hierarchy this process is in.
type cgroupInfo struct {
	v2 bool
	// v2Path is the unified hierarchy path ("0::/x"); v1Paths maps a
	// controller ("cpu", "cpuacct", "memory") to its path.
	v2Path  string
	v1Paths map[string]string
}

func (r *SystemReader) path(p string) string {
	root := r.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.FromSlash(p))
}

func (r *SystemReader) detectCgroup() cgroupInfo {
	info := cgroupInfo{v1Paths: map[string]string{}}
	b, err := os.ReadFile(r.path("/proc/self/cgroup"))
	if err == nil {
		info.v2Path, info.v1Paths = parseProcCgroup(b)
	}
	if _, err := os.Stat(r.path("/sys/fs/cgroup/cgroup.controllers")); err == nil {
		info.v2 = true
		if info.v2Path == "" {
			info.v2Path = "/"
		}
	}
	return info
}

// parseProcCgroup parses /proc/<pid>/cgroup: "hierarchy-ID:controllers:path"
// lines. It returns the unified (v2) path and the v1 path per controller.
func parseProcCgroup(b []byte) (v2 string, v1 map[string]string) {
	v1 = map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		id, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		ctrls, p, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(p, "/") {
			continue
		}
		p = path.Clean(p)
		if id == "0" && ctrls == "" {
			v2 = p
			continue
		}
		for c := range strings.SplitSeq(ctrls, ",") {
			if c != "" {
				v1[c] = p
			}
		}
	}
	return v2, v1
}

// cgroupFile finds file for a cgroup: under the process's own cgroup path
// first, then at the mount root. Inside a container with a private cgroup
// namespace the two are the same; without one (or with a host-side path in
// /proc/self/cgroup that the container cannot see) the mount root is the
// container's own cgroup.
func (r *SystemReader) cgroupFile(mount, cgPath, file string) ([]byte, error) {
	var firstErr error
	for _, dir := range []string{path.Join(mount, cgPath), mount} {
		b, err := os.ReadFile(r.path(path.Join(dir, file)))
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if cgPath == "/" || cgPath == "" {
			break
		}
	}
	return nil, firstErr
}

func (r *SystemReader) numCPU() float64 {
	if r.NumCPU > 0 {
		return float64(r.NumCPU)
	}
	return 1
}

func (r *SystemReader) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// readCPU returns a cumulative reading and the number of cores it is
// measured against.
func (r *SystemReader) readCPU(cg cgroupInfo) (cpuReading, float64, error) {
	now := r.now()
	if cg.v2 {
		stat, err := r.cgroupFile("/sys/fs/cgroup", cg.v2Path, "cpu.stat")
		if err == nil {
			usec, err := parseCPUStatUsage(stat)
			if err == nil {
				limit := r.numCPU()
				if max, err := r.cgroupFile("/sys/fs/cgroup", cg.v2Path, "cpu.max"); err == nil {
					if q, ok, err := parseCPUMax(max); err == nil && ok {
						limit = q
					}
				}
				return cpuReading{source: "cgroup2", usedSec: float64(usec) / 1e6, at: now, ok: true}, limit, nil
			}
		}
	} else if p, ok := cg.v1Paths["cpuacct"]; ok {
		mount := r.v1Mount("cpuacct")
		usage, err := r.cgroupFile(mount, p, "cpuacct.usage")
		if err == nil {
			ns, err := strconv.ParseUint(strings.TrimSpace(string(usage)), 10, 64)
			if err == nil {
				limit := r.numCPU()
				cpuPath := cg.v1Paths["cpu"]
				cpuMount := r.v1Mount("cpu")
				q, qerr := r.cgroupFile(cpuMount, cpuPath, "cpu.cfs_quota_us")
				per, perr := r.cgroupFile(cpuMount, cpuPath, "cpu.cfs_period_us")
				if qerr == nil && perr == nil {
					if cores, ok, err := parseCFSQuota(q, per); err == nil && ok {
						limit = cores
					}
				}
				return cpuReading{source: "cgroup1", usedSec: float64(ns) / 1e9, at: now, ok: true}, limit, nil
			}
		}
	}
	b, err := os.ReadFile(r.path("/proc/stat"))
	if err != nil {
		return cpuReading{}, 0, err
	}
	busy, total, err := parseProcStat(b)
	if err != nil {
		return cpuReading{}, 0, fmt.Errorf("/proc/stat: %w", err)
	}
	// /proc/stat counts every CPU, so the percentage is of all of them.
	return cpuReading{source: "proc", usedSec: busy, totalSec: total, at: now, ok: true}, r.numCPU(), nil
}

// v1Mount finds the mount directory of a v1 controller: Docker mounts
// "cpu,cpuacct" together and links "cpu" and "cpuacct" to it.
func (r *SystemReader) v1Mount(ctrl string) string {
	for _, dir := range []string{ctrl, "cpu,cpuacct", "cpuacct,cpu"} {
		if _, err := os.Stat(r.path("/sys/fs/cgroup/" + dir)); err == nil {
			return "/sys/fs/cgroup/" + dir
		}
	}
	return "/sys/fs/cgroup/" + ctrl
}

// readMemory returns used and limit bytes. "Used" excludes the inactive
// file cache, as `docker stats` and the kubelet do: the kernel reclaims it
// before it would kill anything.
func (r *SystemReader) readMemory(cg cgroupInfo) (used, limit uint64, source string, err error) {
	memTotal, memAvail, mErr := r.meminfo()
	if cg.v2 {
		cur, err := r.cgroupFile("/sys/fs/cgroup", cg.v2Path, "memory.current")
		if err == nil {
			if u, err := parseUint(cur); err == nil {
				limit := memTotal
				if max, err := r.cgroupFile("/sys/fs/cgroup", cg.v2Path, "memory.max"); err == nil {
					if l, ok := parseLimit(max); ok && (memTotal == 0 || l < memTotal) {
						limit = l
					}
				}
				if stat, err := r.cgroupFile("/sys/fs/cgroup", cg.v2Path, "memory.stat"); err == nil {
					u = subSat(u, parseKeyedUint(stat)["inactive_file"])
				}
				if limit != 0 {
					return u, limit, "cgroup2", nil
				}
			}
		}
	} else if p, ok := cg.v1Paths["memory"]; ok {
		mount := r.v1Mount("memory")
		usage, err := r.cgroupFile(mount, p, "memory.usage_in_bytes")
		if err == nil {
			if u, err := parseUint(usage); err == nil {
				limit := memTotal
				if lb, err := r.cgroupFile(mount, p, "memory.limit_in_bytes"); err == nil {
					if l, ok := parseLimit(lb); ok && (memTotal == 0 || l < memTotal) {
						limit = l
					}
				}
				if stat, err := r.cgroupFile(mount, p, "memory.stat"); err == nil {
					u = subSat(u, parseKeyedUint(stat)["total_inactive_file"])
				}
				if limit != 0 {
					return u, limit, "cgroup1", nil
				}
			}
		}
	}
	if mErr != nil {
		return 0, 0, "", mErr
	}
	return subSat(memTotal, memAvail), memTotal, "proc", nil
}

func (r *SystemReader) meminfo() (total, avail uint64, err error) {
	b, err := os.ReadFile(r.path("/proc/meminfo"))
	if err != nil {
		return 0, 0, err
	}
	return parseMeminfo(b)
}

// parseMeminfo returns MemTotal and MemAvailable in bytes.
func parseMeminfo(b []byte) (total, avail uint64, err error) {
	var haveTotal, haveAvail bool
	var free, buffers, cached uint64
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || n > math.MaxUint64/1024 {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		switch k {
		case "MemTotal":
			total, haveTotal = n, true
		case "MemAvailable":
			avail, haveAvail = n, true
		case "MemFree":
			free = n
		case "Buffers":
			buffers = n
		case "Cached":
			cached = n
		}
	}
	if !haveTotal || total == 0 {
		return 0, 0, errors.New("/proc/meminfo: no MemTotal")
	}
	if !haveAvail { // kernels before 3.14
		avail = free + buffers + cached
	}
	return total, min(avail, total), nil
}

// parseCPUStatUsage returns usage_usec from a cgroup v2 cpu.stat.
func parseCPUStatUsage(b []byte) (uint64, error) {
	v, ok := parseKeyedUint(b)["usage_usec"]
	if !ok {
		return 0, errors.New("cpu.stat: no usage_usec")
	}
	return v, nil
}

// parseCPUMax parses cgroup v2 cpu.max ("<quota> <period>" or "max
// <period>") into cores. ok is false when there is no quota.
func parseCPUMax(b []byte) (cores float64, ok bool, err error) {
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f) > 2 {
		return 0, false, fmt.Errorf("cpu.max: want \"<quota> <period>\", got %q", strings.TrimSpace(string(b)))
	}
	if f[0] == "max" {
		return 0, false, nil
	}
	quota, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cpu.max: quota %q: not a number", f[0])
	}
	period := uint64(100000) // the kernel's default when only a quota is written
	if len(f) == 2 {
		if period, err = strconv.ParseUint(f[1], 10, 64); err != nil || period == 0 {
			return 0, false, fmt.Errorf("cpu.max: period %q: want a positive number", f[1])
		}
	}
	if quota == 0 {
		return 0, false, errors.New("cpu.max: zero quota")
	}
	return float64(quota) / float64(period), true, nil
}

// parseCFSQuota parses cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us into
// cores; a quota of -1 means no limit (ok false).
func parseCFSQuota(quotaB, periodB []byte) (cores float64, ok bool, err error) {
	q, err := strconv.ParseInt(strings.TrimSpace(string(quotaB)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cpu.cfs_quota_us: %q: not a number", strings.TrimSpace(string(quotaB)))
	}
	if q <= 0 {
		return 0, false, nil
	}
	p, err := strconv.ParseInt(strings.TrimSpace(string(periodB)), 10, 64)
	if err != nil || p <= 0 {
		return 0, false, fmt.Errorf("cpu.cfs_period_us: %q: want a positive number", strings.TrimSpace(string(periodB)))
	}
	return float64(q) / float64(p), true, nil
}

// parseProcStat returns busy and total CPU seconds from the aggregate "cpu"
// line of /proc/stat (USER_HZ = 100 on every Linux ABI we run on). Idle and
// iowait count as not busy; guest time is already inside user and nice.
func parseProcStat(b []byte) (busy, total float64, err error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var vals [8]float64 // user nice system idle iowait irq softirq steal
		for i := 0; i < len(vals) && i+1 < len(f); i++ {
			v, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("cpu line field %d: %q: not a number", i+1, f[i+1])
			}
			vals[i] = float64(v) / 100
		}
		for _, v := range vals {
			total += v
		}
		busy = total - vals[3] - vals[4]
		return busy, total, nil
	}
	return 0, 0, errors.New("no aggregate cpu line")
}

// parseKeyedUint parses "key value" lines (cpu.stat, memory.stat),
// skipping lines that do not fit.
func parseKeyedUint(b []byte) map[string]uint64 {
	m := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			m[f[0]] = v
		}
	}
	return m
}

func parseUint(b []byte) (uint64, error) {
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// parseLimit parses a memory limit; "max" (v2) and huge values (v1's
// unlimited sentinel) are no limit.
func parseLimit(b []byte) (uint64, bool) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 || v >= noLimit {
		return 0, false
	}
	return v, true
}

func subSat(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
