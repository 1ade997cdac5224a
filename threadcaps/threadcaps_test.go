package threadcaps

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeTree makes a fixture directory from path → content.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The cgroup layouts a container meets: v2 unified, v1 split per
// controller, unlimited, and none at all.
func TestReadLimitsAndCap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		affinity int
		want     Limits
		cap      int
	}{
		{"v2 pathological host: 384 visible, 46-core quota, pids 1024",
			map[string]string{"pids.max": "1024\n", "cpu.max": "4600000 100000\n", "cpuset.cpus.effective": "0-383\n"},
			384, Limits{PidsMax: 1024, Visible: 384, QuotaCores: 46}, 16},
		{"v2 low quota is the cap",
			map[string]string{"pids.max": "512\n", "cpu.max": "400000 100000\n"},
			64, Limits{PidsMax: 512, Visible: 64, QuotaCores: 4}, 4},
		{"v2 cpuset narrows the affinity",
			map[string]string{"pids.max": "100\n", "cpu.max": "max 100000\n", "cpuset.cpus.effective": "0-3,8-11\n"},
			64, Limits{PidsMax: 100, Visible: 8}, 16},
		{"v2 fraction of a core: clamped to 2, not read as no quota",
			map[string]string{"pids.max": "64\n", "cpu.max": "30000 100000\n"},
			32, Limits{PidsMax: 64, Visible: 32, QuotaCores: 1}, 2},
		{"v2 healthy pids budget: no cap",
			map[string]string{"pids.max": "16384\n", "cpu.max": "800000 100000\n"},
			64, Limits{PidsMax: 16384, Visible: 64, QuotaCores: 8}, 0},
		{"v2 exactly at the trigger: no cap",
			map[string]string{"pids.max": "1024\n"},
			64, Limits{PidsMax: 1024, Visible: 64}, 0},
		{"v2 unlimited pids: no cap",
			map[string]string{"pids.max": "max\n", "cpu.max": "100000 100000\n"},
			384, Limits{Visible: 384, QuotaCores: 1}, 0},
		{"v1 controllers",
			map[string]string{"pids/pids.max": "300\n", "cpu/cpu.cfs_quota_us": "600000\n", "cpu/cpu.cfs_period_us": "100000\n", "cpuset/cpuset.effective_cpus": "0-95\n"},
			96, Limits{PidsMax: 300, Visible: 96, QuotaCores: 6}, 6},
		{"v1 quota -1 is unlimited: the ceiling",
			map[string]string{"pids/pids.max": "300\n", "cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
			96, Limits{PidsMax: 300, Visible: 96}, 16},
		{"no cgroup files", map[string]string{}, 8, Limits{Visible: 8}, 0},
		{"garbage", map[string]string{"pids.max": "lots\n", "cpu.max": "x y\n", "cpuset.cpus.effective": "a-b\n"},
			8, Limits{Visible: 8}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ReadLimits(writeTree(t, tc.files), tc.affinity)
			if got != tc.want {
				t.Fatalf("ReadLimits = %+v, want %+v", got, tc.want)
			}
			if c := Cap(got, DefaultCeiling); c != tc.cap {
				t.Fatalf("Cap = %d, want %d", c, tc.cap)
			}
		})
	}
}

func TestCeiling(t *testing.T) {
	for in, want := range map[string]int{"": 16, "8": 8, "1": 16, "x": 16, " 32 ": 32} {
		if got := Ceiling(in); got != want {
			t.Errorf("Ceiling(%q) = %d, want %d", in, got, want)
		}
	}
	if got := Cap(Limits{PidsMax: 10, Visible: 64, QuotaCores: 40}, 8); got != 8 {
		t.Errorf("a lower ceiling bounds the cap: got %d", got)
	}
}

func TestCountCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-3": 4, "0-3,8,10-11": 7, "": 0, " 2-2 ": 1} {
		if got, err := CountCPUList(in); err != nil || got != want {
			t.Errorf("CountCPUList(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"3-1", "x", "1,", "-1", "0-99999999"} {
		if _, err := CountCPUList(bad); err == nil {
			t.Errorf("CountCPUList(%q): no error", bad)
		}
	}
}

func FuzzCountCPUList(f *testing.F) {
	for _, s := range []string{"0-3,8", "", "0", "5-2", "1,,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := CountCPUList(s)
		if err == nil && n < 0 {
			t.Fatalf("negative count %d for %q", n, s)
		}
	})
}

const header = "# Environment of instance C.1\nPATH=\"/usr/bin\"\n"

func TestApply(t *testing.T) {
	block4 := BlockBegin + "\n" +
		"OMP_NUM_THREADS=4\nOPENBLAS_NUM_THREADS=4\nMKL_NUM_THREADS=4\nNUMEXPR_NUM_THREADS=4\n" +
		"NUMEXPR_MAX_THREADS=4\nVECLIB_MAXIMUM_THREADS=4\nRAYON_NUM_THREADS=4\nTOKIO_WORKER_THREADS=4\n" +
		BlockEnd + "\n"
	for _, tc := range []struct {
		name            string
		env, dotenv     string
		limit           int
		file            string // "" = not rewritten
		set, unset, kep []string
	}{
		{name: "healthy host, no block: file untouched", env: header, limit: 0},
		{name: "capped: block appended", env: header, limit: 4, file: header + block4,
			set: []string{"OMP_NUM_THREADS=4", "OPENBLAS_NUM_THREADS=4", "MKL_NUM_THREADS=4", "NUMEXPR_NUM_THREADS=4",
				"NUMEXPR_MAX_THREADS=4", "VECLIB_MAXIMUM_THREADS=4", "RAYON_NUM_THREADS=4", "TOKIO_WORKER_THREADS=4"}},
		{name: "recapped: the old block replaced, not doubled", env: header + strings.ReplaceAll(block4, "=4", "=9"), limit: 4,
			file: header + block4, set: []string{"OMP_NUM_THREADS=4", "OPENBLAS_NUM_THREADS=4", "MKL_NUM_THREADS=4", "NUMEXPR_NUM_THREADS=4",
				"NUMEXPR_MAX_THREADS=4", "VECLIB_MAXIMUM_THREADS=4", "RAYON_NUM_THREADS=4", "TOKIO_WORKER_THREADS=4"}},
		{name: "user values kept: file and .env", env: header + "OMP_NUM_THREADS=\"3\"\n", dotenv: "export TOKIO_WORKER_THREADS=2\n", limit: 4,
			file: header + "OMP_NUM_THREADS=\"3\"\n" + BlockBegin + "\n# OMP_NUM_THREADS: left at user/template value\n" +
				"OPENBLAS_NUM_THREADS=4\nMKL_NUM_THREADS=4\nNUMEXPR_NUM_THREADS=4\nNUMEXPR_MAX_THREADS=4\nVECLIB_MAXIMUM_THREADS=4\nRAYON_NUM_THREADS=4\n" +
				"# TOKIO_WORKER_THREADS: left at user/template value\n" + BlockEnd + "\n",
			set: []string{"OPENBLAS_NUM_THREADS=4", "MKL_NUM_THREADS=4", "NUMEXPR_NUM_THREADS=4", "NUMEXPR_MAX_THREADS=4",
				"VECLIB_MAXIMUM_THREADS=4", "RAYON_NUM_THREADS=4"},
			kep: []string{"OMP_NUM_THREADS", "TOKIO_WORKER_THREADS"}},
		{name: "healthy host now: stale block removed, its variables unset", env: header + block4 + "AFTER=\"1\"\n", dotenv: "RAYON_NUM_THREADS=7\n", limit: 0,
			file:  header + "AFTER=\"1\"\n",
			unset: []string{"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS", "VECLIB_MAXIMUM_THREADS", "TOKIO_WORKER_THREADS"}},
		{name: "a variable an older block set and this one does not is unset", env: header + BlockBegin + "\nHF_HUB_DISABLE_XET=1\n" + BlockEnd + "\n", limit: 2,
			file: header + strings.ReplaceAll(block4, "=4", "=2"),
			set: []string{"OMP_NUM_THREADS=2", "OPENBLAS_NUM_THREADS=2", "MKL_NUM_THREADS=2", "NUMEXPR_NUM_THREADS=2",
				"NUMEXPR_MAX_THREADS=2", "VECLIB_MAXIMUM_THREADS=2", "RAYON_NUM_THREADS=2", "TOKIO_WORKER_THREADS=2"},
			unset: []string{"HF_HUB_DISABLE_XET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Apply([]byte(tc.env), []byte(tc.dotenv), tc.limit)
			if string(c.File) != tc.file {
				t.Errorf("file:\n%s\nwant:\n%s", c.File, tc.file)
			}
			if !reflect.DeepEqual(c.Set, tc.set) || !reflect.DeepEqual(c.Unset, tc.unset) || !reflect.DeepEqual(c.Kept, tc.kep) {
				t.Errorf("set %v unset %v kept %v; want %v %v %v", c.Set, c.Unset, c.Kept, tc.set, tc.unset, tc.kep)
			}
		})
	}
}

func FuzzApply(f *testing.F) {
	f.Add(header, "", 4)
	f.Add(header+BlockBegin+"\nOMP_NUM_THREADS=3\n", "X=1", 0)
	f.Fuzz(func(t *testing.T, env, dotenv string, limit int) {
		limit %= 64
		c := Apply([]byte(env), []byte(dotenv), limit)
		if c.File == nil {
			return
		}
		// Applying again changes nothing: one block, same values.
		again := Apply(c.File, []byte(dotenv), limit)
		if limit > 0 && string(again.File) != string(c.File) {
			t.Fatalf("not idempotent:\n%q\n%q", c.File, again.File)
		}
		if strings.Count(string(c.File), beginMark) > 1 {
			t.Fatalf("two blocks: %q", c.File)
		}
	})
}

func TestWriteFileKeepsMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "environment")
	if err := os.WriteFile(p, []byte("A=1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("B=2\n")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	if fi.Mode().Perm() != 0o640 || string(b) != "B=2\n" {
		t.Fatalf("mode %v body %q", fi.Mode(), b)
	}
}
