package gpumetrics

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseROCmSMISample(t *testing.T) {
	b, err := os.ReadFile("testdata/rocm-smi.json")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := parseROCmSMI(b)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Available || rep.Backend != "rocm-smi" || rep.DriverVersion != "6.8.5" || len(rep.GPUs) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	mi := rep.GPUs[0]
	if mi.Name != "AMD Instinct MI300X OAM" || mi.UUID != "0x18f68e602b8a790f" || mi.PCIBusID != "0000:05:00.0" || mi.Device != "card0" {
		t.Errorf("identity: %+v", mi)
	}
	// Edge temperature is N/A on MI300X: junction is used; fan is N/A: absent.
	if *mi.TemperatureC != 35 || *mi.PowerDrawWatts != 133 || *mi.PowerLimitWatts != 750 || mi.FanSpeedPercent != nil {
		t.Errorf("sensors: temp %v power %v limit %v fan %v", mi.TemperatureC, mi.PowerDrawWatts, mi.PowerLimitWatts, mi.FanSpeedPercent)
	}
	if *mi.MemoryTotalBytes != 205822885888 || *mi.MemoryFreeBytes != 205822885888-297947136 || *mi.UtilizationPercent != 3 || *mi.MemoryUtilizationPercent != 1 {
		t.Errorf("memory/use: %+v", mi)
	}
	if *mi.SMClockMHz != 131 || *mi.MemoryClockMHz != 900 {
		t.Errorf("clocks %d %d", *mi.SMClockMHz, *mi.MemoryClockMHz)
	}
	rx := rep.GPUs[1]
	// Older releases spell "Card series" and "GPU memory use (%)".
	if rx.Name != "Radeon RX 7900 XTX" || rx.UUID != "" || *rx.TemperatureC != 45 || *rx.PowerDrawWatts != 21 || *rx.FanSpeedPercent != 20 || *rx.MemoryUtilizationPercent != 2 {
		t.Errorf("card1: %+v", rx)
	}
}

func TestParseROCmSMIErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "rocm-smi JSON",
		"WARNING: no AMD GPU\n":     "rocm-smi JSON",
		`{"system": {}}`:            "no cardN entries",
		`{"cardX": {}, "card": {}}`: "no cardN entries",
	} {
		if _, err := parseROCmSMI([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v", in, err)
		}
	}
}

// TestROCmSourceRunsProgram drives the source with a stand-in rocm-smi
// (a shell script printing the sample), as a real AMD machine would.
func TestROCmSourceRunsProgram(t *testing.T) {
	dir := t.TempDir()
	sample, _ := filepath.Abs("testdata/rocm-smi.json")
	script := filepath.Join(dir, "rocm-smi")
	body := "#!/bin/sh\ncase \"$*\" in *--json*) cat '" + sample + "' ;; *) exit 3 ;; esac\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	rep := (&ROCmSource{Bin: script}).Sweep(context.Background())
	if !rep.Available || len(rep.GPUs) != 2 {
		t.Fatalf("got %+v", rep)
	}
	failing := filepath.Join(dir, "failing")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho broken >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if rep := (&ROCmSource{Bin: failing}).Sweep(context.Background()); rep.Available || !strings.Contains(rep.Reason, "exit status 1") {
		t.Errorf("failing program: %+v", rep)
	}
	missing := &ROCmSource{Bin: "rocm-smi-definitely-missing"}
	if rep := missing.Sweep(context.Background()); rep.Available || rep.Reason != "rocm-smi-definitely-missing not found on PATH" {
		t.Errorf("missing program: %+v", rep)
	}
}

func FuzzParseROCmSMI(f *testing.F) {
	b, err := os.ReadFile("testdata/rocm-smi.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := parseROCmSMI(in)
		if err != nil {
			return
		}
		if !rep.Available || len(rep.GPUs) == 0 {
			t.Fatalf("success without GPUs: %+v", rep)
		}
		for i := 1; i < len(rep.GPUs); i++ {
			if rep.GPUs[i].Index <= rep.GPUs[i-1].Index {
				t.Fatalf("GPUs not in strictly increasing index order: %d then %d", rep.GPUs[i-1].Index, rep.GPUs[i].Index)
			}
		}
		for _, g := range rep.GPUs {
			for _, p := range []*float64{g.UtilizationPercent, g.TemperatureC, g.PowerDrawWatts, g.FanSpeedPercent} {
				if p != nil && (*p != *p || *p < 0) {
					t.Fatalf("invalid figure %v in %+v", *p, g)
				}
			}
			if g.MemoryFreeBytes != nil && *g.MemoryFreeBytes > *g.MemoryTotalBytes {
				t.Fatalf("free > total: %+v", g)
			}
		}
		if out := RenderPrometheus(&Snapshot{GPUReport: rep}); len(out) == 0 {
			t.Fatal("empty Prometheus output")
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte("0::/docker/abc\n"))
	f.Add([]byte("12:memory:/\n4:cpu,cpuacct:/x/../y\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		v2, v1 := parseProcCgroup(in)
		for c, p := range v1 {
			if c == "" || !strings.HasPrefix(p, "/") || p != path.Clean(p) {
				t.Fatalf("controller %q path %q", c, p)
			}
		}
		if v2 != "" && (!strings.HasPrefix(v2, "/") || v2 != path.Clean(v2)) {
			t.Fatalf("v2 path %q escapes", v2)
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add([]byte("MemTotal: 1000 kB\nMemAvailable: 400 kB\n"))
	f.Add([]byte("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		total, avail, err := parseMeminfo(in)
		if err == nil && (total == 0 || avail > total) {
			t.Fatalf("total %d avail %d", total, avail)
		}
	})
}

func FuzzParseCPUMax(f *testing.F) {
	f.Add([]byte("max 100000\n"))
	f.Add([]byte("150000 100000\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cores, ok, err := parseCPUMax(in)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
		if ok && !(cores > 0) {
			t.Fatalf("quota gives %v cores", cores)
		}
	})
}
