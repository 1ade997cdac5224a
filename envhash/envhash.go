// Package envhash names what made an image's Python environments, so that
// --sync-environment never reuses a venv made by a different image: the
// environments live on the volume under
// ${WORKSPACE}/.environment_sync/<hash>/, the reference's layout, and an
// image with a different hash gets its own directory.
//
// The hash covers what a venv's binaries depend on: the OS release, the
// architecture, the installed system libraries (packages named lib*, *-dev,
// or with cuda or rocm in their name) and, per /venv/<name>, its Python
// version and installed distributions. 12 hex digits, as the reference's
// env-hash prints.
package envhash

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// File is where the image records its hash at build time.
const File = "/.env_hash"

// Compute hashes the environment under root ("/" in the image).
func Compute(root string) string {
	h := sha256.New()
	fmt.Fprintf(h, "arch=%s\n", runtime.GOARCH)
	if b, err := os.ReadFile(filepath.Join(root, "etc/os-release")); err == nil {
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VERSION_ID=") || strings.HasPrefix(l, "VERSION_CODENAME=") || strings.HasPrefix(l, "ID=") {
				lines = append(lines, l)
			}
		}
		sort.Strings(lines)
		fmt.Fprintln(h, strings.Join(lines, "\n"))
	}
	if f, err := os.Open(filepath.Join(root, "var/lib/dpkg/status")); err == nil {
		for _, p := range SystemLibraries(f) {
			fmt.Fprintln(h, p)
		}
		f.Close()
	}
	venvs, _ := filepath.Glob(filepath.Join(root, "venv", "*", "pyvenv.cfg"))
	sort.Strings(venvs)
	for _, cfg := range venvs {
		dir := filepath.Dir(cfg)
		fmt.Fprintf(h, "venv %s\n", filepath.Base(dir))
		if b, err := os.ReadFile(cfg); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(strings.TrimSpace(k), "version") {
					fmt.Fprintf(h, "python %s\n", strings.TrimSpace(v))
				}
			}
		}
		dists, _ := filepath.Glob(filepath.Join(dir, "lib", "python*", "site-packages", "*.dist-info"))
		names := make([]string, 0, len(dists))
		for _, d := range dists {
			names = append(names, strings.ToLower(strings.TrimSuffix(filepath.Base(d), ".dist-info")))
		}
		sort.Strings(names)
		fmt.Fprintln(h, strings.Join(names, "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// SystemLibraries reads a dpkg status file: the installed packages a venv's
// binaries may link against, as "name=version", sorted.
func SystemLibraries(r io.Reader) []string {
	var out []string
	var name, version string
	installed := false
	flush := func() {
		if installed && name != "" && (strings.HasPrefix(name, "lib") || strings.HasSuffix(name, "-dev") ||
			strings.Contains(name, "cuda") || strings.Contains(name, "rocm")) {
			out = append(out, name+"="+version)
		}
		name, version, installed = "", "", false
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "":
			flush()
		case strings.HasPrefix(l, "Package: "):
			name = strings.TrimSpace(strings.TrimPrefix(l, "Package: "))
		case strings.HasPrefix(l, "Version: "):
			version = strings.TrimSpace(strings.TrimPrefix(l, "Version: "))
		case strings.HasPrefix(l, "Status: "):
			installed = strings.HasSuffix(strings.TrimSpace(l), " installed")
		}
	}
	flush()
	sort.Strings(out)
	return out
}
