package gpumetrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ROCmArgs are the rocm-smi flags whose JSON output parseROCmSMI reads.
var ROCmArgs = []string{
	"--showproductname", "--showuniqueid", "--showbus", "--showuse", "--showmemuse",
	"--showmeminfo", "vram", "--showtemp", "--showpower", "--showmaxpower", "--showfan",
	"--showclocks", "--showdriverversion", "--json",
}

// maxROCmOutput bounds what is read from rocm-smi.
const maxROCmOutput = 4 << 20

// parseROCmSMI reads `rocm-smi ... --json` output: an object with one
// "cardN" object per GPU (string values, keys that differ between ROCm
// releases) and a "system" object. Figures missing or "N/A" are left out.
func parseROCmSMI(b []byte) (GPUReport, error) {
	var top map[string]map[string]any
	if err := json.Unmarshal(b, &top); err != nil {
		return GPUReport{}, fmt.Errorf("rocm-smi JSON: %w", err)
	}
	rep := GPUReport{Available: true, Backend: "rocm-smi", GPUs: []GPU{}}
	if sys, ok := top["system"]; ok {
		rep.DriverVersion = lookup(sys, "Driver version")
	}
	type card struct {
		n int
		m map[string]any
	}
	var cards []card
	for k, m := range top {
		num, ok := strings.CutPrefix(k, "card")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			continue
		}
		cards = append(cards, card{n, m})
	}
	if len(cards) == 0 {
		return GPUReport{}, errors.New("rocm-smi JSON: no cardN entries")
	}
	sort.Slice(cards, func(i, j int) bool { return cards[i].n < cards[j].n })
	for _, c := range cards {
		m := c.m
		g := GPU{Index: c.n, Device: fmt.Sprintf("card%d", c.n)}
		g.Name = firstNonEmpty(lookup(m, "Card Series"), lookup(m, "Device Name"), lookup(m, "Card Model"))
		g.UUID = lookup(m, "Unique ID")
		g.PCIBusID = lookup(m, "PCI Bus")
		g.UtilizationPercent = num(m, "GPU use (%)")
		g.MemoryUtilizationPercent = firstNum(m, "GPU Memory Read/Write Activity (%)", "GPU memory use (%)")
		g.MemoryTotalBytes = unum(m, "VRAM Total Memory (B)")
		g.MemoryUsedBytes = unum(m, "VRAM Total Used Memory (B)")
		if g.MemoryTotalBytes != nil && g.MemoryUsedBytes != nil {
			g.MemoryFreeBytes = Ptr(subSat(*g.MemoryTotalBytes, *g.MemoryUsedBytes))
		}
		g.TemperatureC = firstNum(m, "Temperature (Sensor edge) (C)", "Temperature (Sensor junction) (C)")
		g.PowerDrawWatts = firstNum(m, "Average Graphics Package Power (W)", "Current Socket Graphics Package Power (W)")
		g.PowerLimitWatts = num(m, "Max Graphics Package Power (W)")
		g.FanSpeedPercent = num(m, "Fan speed (%)")
		g.SMClockMHz = clock(m, "sclk clock speed:")
		g.MemoryClockMHz = clock(m, "mclk clock speed:")
		rep.GPUs = append(rep.GPUs, g)
	}
	return rep, nil
}

// lookup finds key case-insensitively (ROCm releases differ in case:
// "Card series" / "Card Series") and returns its string value.
func lookup(m map[string]any, key string) string {
	v, ok := m[key]
	if !ok {
		for k, x := range m {
			if strings.EqualFold(k, key) {
				v, ok = x, true
				break
			}
		}
	}
	if !ok {
		return ""
	}
	switch t := v.(type) {
	case string:
		s := strings.TrimSpace(t)
		if strings.EqualFold(s, "N/A") {
			return ""
		}
		return s
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	}
	return ""
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func num(m map[string]any, key string) *float64 {
	f, err := strconv.ParseFloat(lookup(m, key), 64)
	if err != nil || f != f || f < 0 || f > 1e15 { // NaN, negative and absurd values are not figures
		return nil
	}
	return &f
}

func firstNum(m map[string]any, keys ...string) *float64 {
	for _, k := range keys {
		if v := num(m, k); v != nil {
			return v
		}
	}
	return nil
}

func unum(m map[string]any, key string) *uint64 {
	v, err := strconv.ParseUint(lookup(m, key), 10, 64)
	if err != nil {
		return nil
	}
	return &v
}

// clock parses "(1700Mhz)".
func clock(m map[string]any, key string) *uint32 {
	s := strings.Trim(lookup(m, key), "()")
	s = strings.TrimSuffix(strings.TrimSuffix(s, "Mhz"), "MHz")
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return nil
	}
	return Ptr(uint32(v))
}

// ROCmSource reads AMD GPUs by running rocm-smi. It looks the binary up
// at most every Retry, so a machine without it pays one PATH lookup per
// Retry, not a failed exec per sweep.
type ROCmSource struct {
	// Bin is the program name or path. Default: rocm-smi.
	Bin   string
	Retry time.Duration
	Now   func() time.Time

	path      string
	lastCheck time.Time
}

// Sweep runs rocm-smi once, bounded by ctx.
func (r *ROCmSource) Sweep(ctx context.Context) GPUReport {
	bin := r.Bin
	if bin == "" {
		bin = "rocm-smi"
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if r.path == "" {
		retry := r.Retry
		if retry <= 0 {
			retry = 30 * time.Second
		}
		if !r.lastCheck.IsZero() && now().Sub(r.lastCheck) < retry {
			return GPUReport{Reason: bin + " not found on PATH", ReasonCode: ReasonROCmMissing, GPUs: []GPU{}}
		}
		r.lastCheck = now()
		p, err := exec.LookPath(bin)
		if err != nil {
			return GPUReport{Reason: bin + " not found on PATH", ReasonCode: ReasonROCmMissing, GPUs: []GPU{}}
		}
		r.path = p
	}
	cmd := exec.CommandContext(ctx, r.path, ROCmArgs...)
	var out limitedBuffer
	out.max = maxROCmOutput
	cmd.Stdout = &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return GPUReport{Reason: "rocm-smi: " + err.Error(), ReasonCode: ReasonROCmFailed, GPUs: []GPU{}}
	}
	rep, err := parseROCmSMI(out.Bytes())
	if err != nil {
		return GPUReport{Reason: err.Error(), ReasonCode: ReasonROCmFailed, GPUs: []GPU{}}
	}
	return rep
}

// Close has nothing to release.
func (r *ROCmSource) Close() error { return nil }

// limitedBuffer keeps at most max bytes and then fails the write, which
// ends the child with a broken pipe rather than growing without bound.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.Len()+len(p) > l.max {
		return 0, errors.New("output too large")
	}
	return l.Buffer.Write(p)
}

// FirstAvailable sweeps sources in order and returns the first report with
// GPUs. With none, the report is unavailable and its reason lists each
// source's reason ("NVML …; rocm-smi …") and its code is the first
// source's (NVML's, in the portal), the one a user acts on.
func FirstAvailable(sources ...GPUSource) GPUSource { return firstAvailable(sources) }

type firstAvailable []GPUSource

func (f firstAvailable) Sweep(ctx context.Context) GPUReport {
	reasons := make([]string, 0, len(f))
	code := ""
	for _, s := range f {
		rep := s.Sweep(ctx)
		if rep.Available {
			return rep
		}
		if rep.Reason != "" {
			reasons = append(reasons, rep.Reason)
		}
		if code == "" {
			code = rep.ReasonCode
		}
	}
	return GPUReport{Reason: strings.Join(reasons, "; "), ReasonCode: code, GPUs: []GPU{}}
}

func (f firstAvailable) Close() error {
	var errs []error
	for _, s := range f {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
