// Package threadcaps caps the thread pools of native and ML runtimes
// (OpenMP, OpenBLAS, MKL, numexpr, rayon, Tokio) on hosts where the
// container sees many CPUs but may start few processes, the reference
// image's 12-cpu-thread-limits.sh rule in Go.
//
// A container can see every core of a large host (its cpuset is not
// restricted) while its CPU quota is a small slice and its pids.max is
// low. Runtimes size their pools to the visible cores, a few pools exhaust
// pids.max, and pthread_create fails with EAGAIN. The rule acts only when
// pids.max is below PidsPerVisibleCore threads per visible core; it then
// caps every pool at the CPU quota, clamped to [2, ceiling].
//
// The caps live in a managed block of the environment file
// (/etc/environment), delimited by BlockBegin and BlockEnd exactly as the
// reference writes it, recomputed at each boot; a variable the user or
// template set outside the block, or in ${WORKSPACE}/.env, is left alone.
package threadcaps

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/instanceportal/portal/atomicfile"
)

// Vars are the variables a cap sets, in the order the block lists them
// (the reference's list).
var Vars = []string{
	"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
	"NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS", "VECLIB_MAXIMUM_THREADS",
	"RAYON_NUM_THREADS", "TOKIO_WORKER_THREADS",
}

// The managed block's delimiters, as the reference writes them (a volume
// or an /etc/environment may move between its images and ours).
const (
	BlockBegin = "# VAST_CPU_THREAD_CAPS_BEGIN (ADR 0014, managed — do not edit)"
	BlockEnd   = "# VAST_CPU_THREAD_CAPS_END"
	beginMark  = "VAST_CPU_THREAD_CAPS_BEGIN"
	endMark    = "VAST_CPU_THREAD_CAPS_END"
)

// CeilingEnv names the variable that sets the highest cap; DefaultCeiling
// is its default. A value below 2 or not a number means the default.
const (
	CeilingEnv     = "VAST_CPU_THREAD_CEILING"
	DefaultCeiling = 16
)

// PidsPerVisibleCore is the trigger: the rule acts only when pids.max is
// below this many per visible core. Healthy hosts give 30-120; the host
// that motivated the reference's rule gave 2.7.
const PidsPerVisibleCore = 16

// DefaultCgroupDir is where the container's cgroup is mounted.
const DefaultCgroupDir = "/sys/fs/cgroup"

// Limits is what the cgroup allows. Zero means unlimited or unknown.
type Limits struct {
	PidsMax    int // pids.max
	Visible    int // CPUs the container may run on (affinity, cpuset)
	QuotaCores int // cpu.max quota in whole cores, rounded, at least 1 when set
}

// Cap is the thread cap for l, or 0 to leave every runtime at its default.
func Cap(l Limits, ceiling int) int {
	if ceiling < 2 {
		ceiling = DefaultCeiling
	}
	if l.PidsMax <= 0 || l.Visible <= 0 || l.PidsMax >= l.Visible*PidsPerVisibleCore {
		return 0
	}
	c := ceiling
	if l.QuotaCores > 0 && l.QuotaCores < ceiling {
		c = l.QuotaCores
	}
	return max(c, 2)
}

// Ceiling reads the ceiling from CeilingEnv's value ("" for the default).
func Ceiling(v string) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 2 {
		return DefaultCeiling
	}
	return n
}

// ReadLimits reads the limits of the cgroup mounted at dir, version 2
// first, then version 1. affinity is the number of CPUs the process may
// run on (runtime.NumCPU); the cpuset, when readable, lowers it.
func ReadLimits(dir string, affinity int) Limits {
	read := func(p string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(dir, p))
		return strings.TrimSpace(string(b)), err == nil
	}
	var l Limits
	if s, ok := read("pids.max"); ok {
		l.PidsMax = parsePids(s)
	} else if s, ok := read("pids/pids.max"); ok {
		l.PidsMax = parsePids(s)
	}
	if s, ok := read("cpu.max"); ok {
		q, p, _ := strings.Cut(s, " ")
		l.QuotaCores = quotaCores(q, p)
	} else if q, ok := read("cpu/cpu.cfs_quota_us"); ok {
		p, _ := read("cpu/cpu.cfs_period_us")
		l.QuotaCores = quotaCores(q, p)
	}
	l.Visible = affinity
	for _, p := range []string{"cpuset.cpus.effective", "cpuset/cpuset.effective_cpus", "cpuset/cpuset.cpus"} {
		if s, ok := read(p); ok {
			if n, err := CountCPUList(s); err == nil && n > 0 {
				if l.Visible <= 0 || n < l.Visible {
					l.Visible = n
				}
				break
			}
		}
	}
	return l
}

func parsePids(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0 // "max", or unreadable: nothing to protect
	}
	return n
}

// quotaCores turns a CFS quota and period (microseconds) into whole cores,
// rounded to the nearest, but at least 1: a quota is a limit, and a
// fraction of a core must not read as "no quota".
func quotaCores(quota, period string) int {
	q, err1 := strconv.ParseInt(strings.TrimSpace(quota), 10, 64)
	p, err2 := strconv.ParseInt(strings.TrimSpace(period), 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0 // "max", -1 or unreadable: unlimited
	}
	return int(max((q+p/2)/p, 1))
}

// CountCPUList counts the CPUs of a cpuset list ("0-3,8,10-11").
func CountCPUList(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0, fmt.Errorf("cpu list %q: bad entry %q", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > 1<<20 {
				return 0, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		n += b - a + 1
	}
	return n, nil
}

// Change is what Apply did: the new file (nil when it need not be
// rewritten), and what the boot shell must export and unset so that the
// programs it starts see the same values as the file.
type Change struct {
	File  []byte
	Set   []string // NAME=VALUE
	Unset []string // NAME
	Kept  []string // capped variables left at the user's value
}

var assignment = regexp.MustCompile(`^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=`)

// Apply computes the environment file with the managed block for cap (0:
// no block) from its current content env and the user's .env content.
func Apply(env, dotenv []byte, limit int) Change {
	var outside, block []string
	inBlock, hadBlock := false, false
	sc := bufio.NewScanner(bytes.NewReader(env))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !inBlock && strings.Contains(line, beginMark):
			inBlock, hadBlock = true, true
		case inBlock:
			if strings.Contains(line, endMark) {
				inBlock = false
			} else {
				block = append(block, line)
			}
		default:
			outside = append(outside, line)
		}
	}
	userSet := map[string]bool{}
	for _, l := range outside {
		if m := assignment.FindStringSubmatch(l); m != nil {
			userSet[m[1]] = true
		}
	}
	for _, l := range strings.Split(string(dotenv), "\n") {
		if m := assignment.FindStringSubmatch(l); m != nil {
			userSet[m[1]] = true
		}
	}
	var prev []string
	for _, l := range block {
		if m := assignment.FindStringSubmatch(l); m != nil {
			prev = append(prev, m[1])
		}
	}
	var c Change
	managed := map[string]bool{}
	if limit > 0 {
		for _, v := range Vars {
			managed[v] = true
		}
	}
	for _, v := range prev {
		if !managed[v] && !userSet[v] {
			c.Unset = append(c.Unset, v)
		}
	}
	if limit <= 0 && !hadBlock {
		return c
	}
	var buf bytes.Buffer
	for _, l := range outside {
		buf.WriteString(l + "\n")
	}
	if limit > 0 {
		buf.WriteString(BlockBegin + "\n")
		for _, v := range Vars {
			if userSet[v] {
				fmt.Fprintf(&buf, "# %s: left at user/template value\n", v)
				c.Kept = append(c.Kept, v)
				continue
			}
			fmt.Fprintf(&buf, "%s=%d\n", v, limit)
			c.Set = append(c.Set, fmt.Sprintf("%s=%d", v, limit))
		}
		buf.WriteString(BlockEnd + "\n")
	}
	c.File = buf.Bytes()
	return c
}

// WriteFile replaces path with data by rename, keeping its mode (0600 for
// a new file: the environment file holds secrets).
func WriteFile(path string, data []byte) error {
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	return atomicfile.Write(path, data, mode)
}
