package capabilities

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// pythonEnvironments copies the declared environments, sets each one's
// kind from what is on disk (conda or venv), and with include=packages
// adds package_versions for its packages_of_interest.
func pythonEnvironments(ctx context.Context, envs []map[string]any, withPackages bool, pp *PackageProber, h *Host) []map[string]any {
	out := make([]map[string]any, 0, len(envs))
	for _, env := range envs {
		e := copyMap(env)
		path := stringOr(env["path"], "")
		if kind := envKind(path, h); kind != "" {
			e["kind"] = kind
		}
		poi := stringList(env["packages_of_interest"])
		if withPackages && pp != nil && path != "" && len(poi) > 0 {
			e["package_versions"] = pp.Versions(ctx, path, poi)
		}
		out = append(out, e)
	}
	return out
}

// envKind is "conda" for a conda environment, "venv" for a virtual
// environment, "" when path is neither.
func envKind(path string, h *Host) string {
	switch {
	case path == "":
		return ""
	case h.exists(filepath.Join(path, "conda-meta")):
		return "conda"
	case h.exists(filepath.Join(path, "pyvenv.cfg")):
		return "venv"
	}
	return ""
}

// PackageProber reads installed package versions by running the
// environment's own Python (importlib.metadata), bounded in time and
// output, and caches the answer.
type PackageProber struct {
	// Timeout bounds one run. Default: 20s (the reference's)
	Timeout time.Duration
	// CacheTTL is how long an answer is reused. Default: 60s
	CacheTTL time.Duration

	mu    sync.Mutex
	cache map[string]pkgEntry
}

type pkgEntry struct {
	at       time.Time
	versions map[string]*string
}

// maxPackageOutput bounds what is read of the Python's output.
const maxPackageOutput = 64 << 10

// versionScript prints {name: version or null} for its arguments.
const versionScript = `import json, sys
from importlib.metadata import version
out = {}
for n in sys.argv[1:]:
    try:
        out[n] = version(n)
    except Exception:
        out[n] = None
print(json.dumps(out))
`

// Versions returns {name: version} for names in the environment at path;
// a package that is not installed maps to null. Without a Python there, or
// when it fails, the map is empty.
func (p *PackageProber) Versions(ctx context.Context, path string, names []string) map[string]*string {
	key := path + "\x00" + strings.Join(names, "\x00")
	ttl := p.CacheTTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	p.mu.Lock()
	if e, ok := p.cache[key]; ok && time.Since(e.at) < ttl {
		p.mu.Unlock()
		return e.versions
	}
	p.mu.Unlock()

	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := map[string]*string{}
	cmd := exec.CommandContext(ctx, filepath.Join(path, "bin", "python"), append([]string{"-c", versionScript}, names...)...)
	var buf bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &buf, left: maxPackageOutput}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil || json.Unmarshal(buf.Bytes(), &out) != nil {
		return map[string]*string{}
	}
	for k := range out {
		if !slices.Contains(names, k) {
			delete(out, k)
		}
	}
	p.mu.Lock()
	if p.cache == nil {
		p.cache = map[string]pkgEntry{}
	}
	p.cache[key] = pkgEntry{at: time.Now(), versions: out}
	p.mu.Unlock()
	return out
}

// limitedWriter keeps the first left bytes and discards the rest.
type limitedWriter struct {
	w    io.Writer
	left int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	n := len(b)
	if l.left <= 0 {
		return n, nil
	}
	if len(b) > l.left {
		b = b[:l.left]
	}
	l.left -= len(b)
	_, err := l.w.Write(b)
	return n, err
}
