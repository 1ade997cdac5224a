// Package cudacompat decides CUDA forward compatibility at boot, as the
// reference image's 05-configure-cuda.sh does: when the host driver is
// older than the newest CUDA toolkit in the image, and that toolkit ships
// compat libraries (/usr/local/cuda-X.Y/compat/libcuda.so.*) that
// initialise on this GPU, the loader is pointed at them through
// /etc/ld.so.conf.d/0-compat-cuda.conf; otherwise that file is removed.
//
// The driver's version is read from the driver itself
// (/proc/driver/nvidia/version, written by the kernel module), never from
// a tool's prose, and turned into the newest CUDA it runs by NVIDIA's
// published minimum-driver table.
package cudacompat

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Paths the reference uses, relative to the root ("/" in the image).
const (
	DriverVersionFile = "/proc/driver/nvidia/version"
	ConfFile          = "/etc/ld.so.conf.d/0-compat-cuda.conf"
	// EstablishedMarker remembers, across boots, the toolkit that forward
	// compatibility was enabled for (the conf file is rewritten each boot).
	EstablishedMarker = "/etc/vast-cuda-compat-established"
	// DisableEnv set to "true" (the --no-forward-compat flag) turns it off.
	DisableEnv = "DISABLE_FORWARD_COMPAT"
)

// Version is a major.minor pair (a CUDA version, or a driver branch).
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less reports v < w, component by component (13.10 > 13.9).
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	return v.Minor < w.Minor
}

// ParseVersion reads "X.Y" (more components are ignored).
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR", s)
	}
	a, err1 := strconv.Atoi(parts[0])
	b, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || a < 0 || b < 0 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR", s)
	}
	return Version{a, b}, nil
}

var nvrm = regexp.MustCompile(`NVRM version:[^\n]*?\s(\d+\.\d+(?:\.\d+)*)\s`)

// DriverVersionText reads the driver's whole version, "550.54.14", from the
// kernel module's /proc/driver/nvidia/version ("NVRM version: NVIDIA UNIX
// x86_64 Kernel Module  550.54.14  Thu Feb 22 …", or "… Open Kernel Module
// for x86_64  570.86.15  Release Build …").
func DriverVersionText(text string) (string, error) {
	m := nvrm.FindStringSubmatch(text)
	if m == nil {
		return "", fmt.Errorf("no \"NVRM version: … MAJOR.MINOR\" line")
	}
	return m[1], nil
}

// ParseDriverVersion is DriverVersionText's driver branch (550.54).
func ParseDriverVersion(text string) (Version, error) {
	s, err := DriverVersionText(text)
	if err != nil {
		return Version{}, err
	}
	return ParseVersion(s)
}

// minDriver is NVIDIA's table of the oldest Linux driver each CUDA
// version needs (CUDA Toolkit release notes, "CUDA Toolkit and Corresponding
// Driver Versions", GA releases), newest first.
var minDriver = []struct{ cuda, driver Version }{
	{Version{13, 0}, Version{580, 65}},
	{Version{12, 9}, Version{575, 51}},
	{Version{12, 8}, Version{570, 26}},
	{Version{12, 6}, Version{560, 28}},
	{Version{12, 5}, Version{555, 42}},
	{Version{12, 4}, Version{550, 54}},
	{Version{12, 3}, Version{545, 23}},
	{Version{12, 2}, Version{535, 54}},
	{Version{12, 1}, Version{530, 30}},
	{Version{12, 0}, Version{525, 60}},
	{Version{11, 8}, Version{520, 61}},
	{Version{11, 7}, Version{515, 43}},
	{Version{11, 6}, Version{510, 39}},
	{Version{11, 5}, Version{495, 29}},
	{Version{11, 4}, Version{470, 42}},
	{Version{11, 3}, Version{465, 19}},
	{Version{11, 2}, Version{460, 27}},
	{Version{11, 1}, Version{455, 23}},
	{Version{11, 0}, Version{450, 36}},
}

// MaxCUDA is the newest CUDA that driver runs natively; false when the
// driver predates CUDA 11.
func MaxCUDA(driver Version) (Version, bool) {
	for _, e := range minDriver {
		if !driver.Less(e.driver) {
			return e.cuda, true
		}
	}
	return Version{}, false
}

// Toolkit is one /usr/local/cuda-X.Y of the image.
type Toolkit struct {
	Version   Version
	CompatDir string // its compat/ directory when it holds libcuda.so.*; "" if not
}

// Toolkits lists root/usr/local/cuda-X.Y, newest first.
func Toolkits(root string) []Toolkit {
	dirs, _ := filepath.Glob(filepath.Join(root, "usr/local/cuda-*"))
	var out []Toolkit
	for _, d := range dirs {
		v, err := ParseVersion(strings.TrimPrefix(filepath.Base(d), "cuda-"))
		if err != nil || strings.Count(filepath.Base(d), ".") != 1 {
			continue
		}
		tk := Toolkit{Version: v}
		if libs, _ := filepath.Glob(filepath.Join(d, "compat", "libcuda.so.*")); len(libs) > 0 {
			tk.CompatDir = filepath.Join(d, "compat")
		}
		out = append(out, tk)
	}
	sort.Slice(out, func(i, j int) bool { return out[j].Version.Less(out[i].Version) })
	return out
}

// Decision is what the boot does.
type Decision struct {
	Enable    bool
	Toolkit   Version
	CompatDir string // in the image's paths (root stripped)
	Reason    string
}

// Decide: forward compatibility for the newest toolkit when the driver is
// older than it, not disabled, and its compat libraries exist and pass
// probe (cuInit with them on this GPU: consumer GPUs refuse them).
func Decide(driverMax Version, toolkits []Toolkit, disabled bool, probe func(compatDir string) error) Decision {
	if len(toolkits) == 0 {
		return Decision{Reason: "no /usr/local/cuda-X.Y in the image"}
	}
	newest := toolkits[0]
	switch {
	case !driverMax.Less(newest.Version):
		return Decision{Toolkit: newest.Version, Reason: fmt.Sprintf("the driver runs CUDA %s natively (toolkit %s)", driverMax, newest.Version)}
	case disabled:
		return Decision{Toolkit: newest.Version, Reason: fmt.Sprintf("driver CUDA %s < toolkit %s, but forward compatibility is disabled (%s)", driverMax, newest.Version, DisableEnv)}
	case newest.CompatDir == "":
		return Decision{Toolkit: newest.Version, Reason: fmt.Sprintf("driver CUDA %s < toolkit %s, and the toolkit ships no compat/libcuda.so.*", driverMax, newest.Version)}
	}
	if err := probe(newest.CompatDir); err != nil {
		return Decision{Toolkit: newest.Version, Reason: fmt.Sprintf("driver CUDA %s < toolkit %s; its compat libraries do not initialise on this GPU (%v): minor-version compatibility only", driverMax, newest.Version, err)}
	}
	return Decision{Enable: true, Toolkit: newest.Version, CompatDir: newest.CompatDir,
		Reason: fmt.Sprintf("driver CUDA %s < toolkit %s: forward compatibility through %s", driverMax, newest.Version, newest.CompatDir)}
}

// Apply writes or removes root's ConfFile (and EstablishedMarker when
// enabled); it reports whether the loader configuration changed.
func Apply(root string, d Decision) (changed bool, err error) {
	conf := filepath.Join(root, ConfFile)
	old, readErr := os.ReadFile(conf)
	if !d.Enable {
		if readErr != nil {
			return false, nil
		}
		return true, os.Remove(conf)
	}
	dir := strings.TrimPrefix(d.CompatDir, strings.TrimSuffix(root, "/"))
	want := dir + "\n"
	if readErr == nil && string(old) == want {
		changed = false
	} else {
		if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(conf, []byte(want), 0o644); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, os.WriteFile(filepath.Join(root, EstablishedMarker), []byte(d.Toolkit.String()+"\n"), 0o644)
}
