package capabilities

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Host reads facts of the machine. Each field may be nil (the fact is then
// unknown or false); RealHost fills them all. Tests replace single fields.
type Host struct {
	// Listening returns the TCP ports in LISTEN state.
	Listening func() map[int]bool
	// IsVolume reports whether path is a mount of its own (not the root
	// filesystem's device).
	IsVolume func(path string) bool
	// ReadFile reads a small file (/.launch, the NVIDIA driver version…).
	ReadFile func(path string) ([]byte, error)
	// Exists reports whether a path exists.
	Exists func(path string) bool
	// ListDir returns the names in a directory.
	ListDir func(path string) []string
	// Resolve follows the symbolic links of a path.
	Resolve func(path string) string
	// SharedLibs returns the shared-library names the loader sees.
	SharedLibs func() map[string]bool
	// HomeDir is the home directory (rclone's config lives under it).
	HomeDir string
}

var (
	realHostOnce sync.Once
	realHost     *Host
)

// RealHost reads the machine this process runs on. The loader's library
// list (ldconfig -p, bounded to 5 s) is cached for five minutes.
func RealHost() *Host {
	realHostOnce.Do(func() {
		home, _ := os.UserHomeDir()
		libs := &libCache{ttl: 5 * time.Minute}
		realHost = &Host{
			Listening: func() map[int]bool { return listeningPorts("/proc/net/tcp", "/proc/net/tcp6") },
			IsVolume:  isSeparateMount,
			ReadFile:  func(p string) ([]byte, error) { return readBounded(p, 64<<10) },
			Exists: func(p string) bool {
				_, err := os.Stat(p)
				return err == nil
			},
			ListDir: func(p string) []string {
				entries, _ := os.ReadDir(p)
				names := make([]string, 0, len(entries))
				for i, e := range entries {
					if i >= 4096 {
						break
					}
					names = append(names, e.Name())
				}
				return names
			},
			Resolve: func(p string) string {
				r, err := filepath.EvalSymlinks(p)
				if err != nil {
					return p
				}
				return r
			},
			SharedLibs: libs.get,
			HomeDir:    home,
		}
	})
	return realHost
}

func (h *Host) listening() map[int]bool {
	if h.Listening == nil {
		return nil
	}
	return h.Listening()
}

func (h *Host) isVolume(p string) bool { return h.IsVolume != nil && h.IsVolume(p) }

func (h *Host) exists(p string) bool { return h.Exists != nil && h.Exists(p) }

func (h *Host) read(p string) string {
	if h.ReadFile == nil {
		return ""
	}
	b, err := h.ReadFile(p)
	if err != nil {
		return ""
	}
	return string(b)
}

// launchHasJupyter: /.launch names Jupyter, which the platform then runs
// itself (no supervisord program).
func (h *Host) launchHasJupyter(launchFile string) bool {
	return strings.Contains(strings.ToLower(h.read(launchFile)), "jupyter")
}

func (h *Host) rcloneConfigured() bool {
	return h.HomeDir != "" && h.exists(filepath.Join(h.HomeDir, ".config", "rclone", "rclone.conf"))
}

func (h *Host) list(dir string) []string {
	if h.ListDir == nil {
		return nil
	}
	return h.ListDir(dir)
}

func (h *Host) resolve(p string) string {
	if h.Resolve == nil {
		return p
	}
	return h.Resolve(p)
}

// onPath reports whether name is a file in one of the PATH directories.
func (h *Host) onPath(name, path string) bool {
	for _, dir := range filepath.SplitList(path) {
		if dir != "" && h.exists(filepath.Join(dir, name)) {
			return true
		}
	}
	return false
}

func (h *Host) sharedLibs() map[string]bool {
	if h.SharedLibs == nil {
		return nil
	}
	return h.SharedLibs()
}

// isSeparateMount: path exists and sits on another device than /.
func isSeparateMount(path string) bool {
	var root, ws syscall.Stat_t
	if syscall.Stat("/", &root) != nil || syscall.Stat(path, &ws) != nil {
		return false
	}
	return ws.Mode&syscall.S_IFMT == syscall.S_IFDIR && root.Dev != ws.Dev
}

// maxProcNetLines bounds the lines read of one /proc/net/tcp file.
const maxProcNetLines = 65536

// listeningPorts reads the LISTEN sockets (state 0A) of /proc/net/tcp*.
func listeningPorts(files ...string) map[int]bool {
	out := map[int]bool{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for n := 0; sc.Scan() && n < maxProcNetLines; n++ {
			if p, ok := parseProcNetLine(sc.Text()); ok {
				out[p] = true
			}
		}
		f.Close()
	}
	return out
}

// parseProcNetLine returns the local port of a LISTEN line of /proc/net/tcp.
func parseProcNetLine(line string) (int, bool) {
	fields := strings.Fields(line)
	if len(fields) < 4 || fields[3] != "0A" {
		return 0, false
	}
	i := strings.LastIndexByte(fields[1], ':')
	if i < 0 {
		return 0, false
	}
	p, err := strconv.ParseUint(fields[1][i+1:], 16, 16)
	if err != nil {
		return 0, false
	}
	return int(p), true
}

// libCache keeps the loader's library names for a while: ldconfig runs
// in a subprocess, too slow to run per request.
type libCache struct {
	ttl  time.Duration
	mu   sync.Mutex
	at   time.Time
	libs map[string]bool
}

func (c *libCache) get() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.libs != nil && time.Since(c.at) < c.ttl {
		return c.libs
	}
	c.libs, c.at = loaderLibs(), time.Now()
	return c.libs
}

// loaderLibs lists what `ldconfig -p` knows plus the files of the
// LD_LIBRARY_PATH directories.
func loaderLibs() map[string]bool {
	libs := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ldconfig", "-p").Output(); err == nil {
		for line := range strings.SplitSeq(string(out), "\n") {
			if tok, _, _ := strings.Cut(strings.TrimSpace(line), " "); strings.Contains(tok, ".so") {
				libs[tok] = true
			}
		}
	}
	for _, dir := range filepath.SplitList(os.Getenv("LD_LIBRARY_PATH")) {
		if dir == "" {
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for i, e := range entries {
			if i >= 4096 {
				break
			}
			libs[e.Name()] = true
		}
	}
	return libs
}
