package cudacompat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDriverVersion(t *testing.T) {
	for text, want := range map[string]struct {
		full   string
		branch Version
	}{
		"NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\nGCC version:  gcc 12\n": {"550.54.14", Version{550, 54}},
		"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (dvs-builder@U16)\n":          {"570.86.15", Version{570, 86}},
		"NVRM version: NVIDIA UNIX aarch64 Kernel Module  535.104.05  Sat Aug 19 01:13:19 UTC 2023\n":                     {"535.104.05", Version{535, 104}},
	} {
		got, err := ParseDriverVersion(text)
		if err != nil || got != want.branch {
			t.Errorf("%q: %v %v, want %v", text, got, err, want.branch)
		}
		if full, err := DriverVersionText(text); err != nil || full != want.full {
			t.Errorf("%q: text %q %v, want %q", text, full, err, want.full)
		}
	}
	for _, bad := range []string{"", "GCC version: gcc 12.2.0\n", "NVRM version: unknown\n"} {
		if v, err := ParseDriverVersion(bad); err == nil {
			t.Errorf("%q: got %v, want an error", bad, v)
		}
		if s, err := DriverVersionText(bad); err == nil {
			t.Errorf("%q: text %q, want an error", bad, s)
		}
	}
}

func FuzzParseDriverVersion(f *testing.F) {
	f.Add("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu\n")
	f.Add("NVRM version: 1.2 ")
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseDriverVersion(s); err == nil && (v.Major < 0 || v.Minor < 0) {
			t.Fatal(v)
		}
	})
}

func TestMaxCUDA(t *testing.T) {
	for _, tc := range []struct {
		driver, want Version
		ok           bool
	}{
		{Version{550, 54}, Version{12, 4}, true},
		{Version{550, 10}, Version{12, 3}, true},
		{Version{570, 86}, Version{12, 8}, true},
		{Version{580, 65}, Version{13, 0}, true},
		{Version{610, 1}, Version{13, 0}, true},
		{Version{535, 104}, Version{12, 2}, true},
		{Version{440, 1}, Version{}, false},
	} {
		got, ok := MaxCUDA(tc.driver)
		if got != tc.want || ok != tc.ok {
			t.Errorf("MaxCUDA(%v) = %v %v, want %v %v", tc.driver, got, ok, tc.want, tc.ok)
		}
	}
	if !(Version{13, 9}).Less(Version{13, 10}) {
		t.Error("13.9 < 13.10, component-wise")
	}
}

// fakeRoot lays out /usr/local/cuda-X.Y dirs; those named in compat get
// a compat/libcuda.so.1.
func fakeRoot(t *testing.T, toolkits []string, compat ...string) string {
	root := t.TempDir()
	for _, v := range toolkits {
		if err := os.MkdirAll(filepath.Join(root, "usr/local/cuda-"+v, "lib64"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range compat {
		d := filepath.Join(root, "usr/local/cuda-"+v, "compat")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "libcuda.so.1"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDecideAndApply(t *testing.T) {
	ok := func(string) error { return nil }
	refuses := func(string) error { return errors.New("cuInit 804") }
	for _, tc := range []struct {
		name      string
		toolkits  []string
		compat    []string
		driverMax Version
		disabled  bool
		probe     func(string) error
		enable    bool
		reason    string
	}{
		{"driver new enough", []string{"12.8"}, []string{"12.8"}, Version{12, 8}, false, ok, false, "natively"},
		{"old driver, compat libs that work", []string{"12.4", "12.8"}, []string{"12.8"}, Version{12, 4}, false, ok, true, "forward compatibility through"},
		{"old driver, disabled", []string{"12.8"}, []string{"12.8"}, Version{12, 4}, true, ok, false, "disabled"},
		{"old driver, no compat libs", []string{"12.8"}, nil, Version{12, 4}, false, ok, false, "no compat"},
		{"old driver, consumer GPU refuses", []string{"12.8"}, []string{"12.8"}, Version{12, 4}, false, refuses, false, "minor-version"},
		{"double-digit minor compared as numbers", []string{"13.9", "13.10"}, []string{"13.10"}, Version{13, 9}, false, ok, true, "13.10"},
		{"no toolkit", nil, nil, Version{12, 4}, false, ok, false, "no /usr/local/cuda"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t, tc.toolkits, tc.compat...)
			d := Decide(tc.driverMax, Toolkits(root), tc.disabled, tc.probe)
			if d.Enable != tc.enable || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("Decide = %+v, want enable %v with %q", d, tc.enable, tc.reason)
			}
			// A conf left by an earlier boot: rewritten or removed.
			conf := filepath.Join(root, ConfFile)
			os.MkdirAll(filepath.Dir(conf), 0o755)
			os.WriteFile(conf, []byte("/usr/local/cuda-9.9/compat\n"), 0o644)
			changed, err := Apply(root, d)
			if err != nil || !changed {
				t.Fatalf("Apply: changed %v, %v", changed, err)
			}
			b, err := os.ReadFile(conf)
			if tc.enable {
				want := "/usr/local/cuda-" + d.Toolkit.String() + "/compat\n"
				if string(b) != want {
					t.Fatalf("conf %q, want %q", b, want)
				}
				if m, _ := os.ReadFile(filepath.Join(root, EstablishedMarker)); string(m) != d.Toolkit.String()+"\n" {
					t.Fatalf("marker %q", m)
				}
				if again, _ := Apply(root, d); again {
					t.Fatal("the same decision again changed the conf")
				}
			} else if !os.IsNotExist(err) {
				t.Fatalf("conf still there: %q", b)
			}
		})
	}
}
