// Package exposure finds the TCP listeners that bypass the portal: sockets
// listening on a non-loopback address whose owner is neither caddy (the
// portal, which authenticates) nor allowlisted. A template that binds its
// app to 0.0.0.0 instead of 127.0.0.1 puts it on the public port mapping
// with no authentication; this says so at once.
//
// It reads /proc/net/tcp and /proc/net/tcp6 (the caller's network
// namespace: the container's), and maps each socket's inode to a process
// through /proc/PID/fd. The allowlist is the reference image's format
// (opt/instance-tools/tests/exposure-allowlist/*.conf):
//
//	<port|env:VAR>/<proto>  <class>  <note>
//
// class is raw, self-auth-http, harness or platform; env:VAR is resolved
// when scanning, and an unset or non-numeric VAR allows nothing.
package exposure

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Settings: where the allowlist fragments live (the reference's path, so
// that a derived image's fragment applies here too), overridable by
// AllowlistDirEnv.
const (
	AllowlistDirEnv     = "EXPOSURE_ALLOWLIST_DIR"
	DefaultAllowlistDir = "/opt/instance-tools/tests/exposure-allowlist"
	DefaultProcDir      = "/proc"
	// Trusted is the process name of the portal, whose listeners
	// authenticate.
	Trusted = "caddy"
)

// Socket is one listening socket of /proc/net/tcp{,6}.
type Socket struct {
	Addr  netip.Addr
	Port  int
	Inode uint64
}

// ParseNetTCP reads the LISTEN sockets (state 0A) of a /proc/net/tcp or
// /proc/net/tcp6 file.
func ParseNetTCP(r io.Reader) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(r)
	first := true
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if first {
			first = false
			if len(f) > 0 && f[0] == "sl" {
				continue
			}
		}
		if len(f) == 0 {
			continue
		}
		if len(f) < 10 {
			return nil, fmt.Errorf("line %d: %d fields, want at least 10", n, len(f))
		}
		if f[3] != "0A" {
			continue
		}
		addr, port, err := parseHexAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: inode %q: %w", n, f[9], err)
		}
		out = append(out, Socket{Addr: addr, Port: port, Inode: inode})
	}
	return out, sc.Err()
}

// parseHexAddr reads "0100007F:1F90" (IPv4) or 32 hex digits ":PORT"
// (IPv6): the address in 32-bit words of host (little-endian) order.
func parseHexAddr(s string) (netip.Addr, int, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("address %q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("address %q: port: %w", s, err)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, fmt.Errorf("address %q: want 8 or 32 hex digits", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw)
	return addr.Unmap(), int(port), nil
}

// Process owns sockets.
type Process struct {
	PID  int
	Name string // /proc/PID/comm
}

// Owners maps socket inodes to the processes holding them, from procDir's
// PID/fd links ("socket:[INODE]"). Processes that vanish or cannot be read
// are skipped.
func Owners(procDir string) map[uint64]Process {
	out := map[uint64]Process{}
	entries, _ := os.ReadDir(procDir)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(procDir, e.Name(), "fd"))
		if err != nil {
			continue
		}
		var name string
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(procDir, e.Name(), "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			if name == "" {
				b, _ := os.ReadFile(filepath.Join(procDir, e.Name(), "comm"))
				name = strings.TrimSpace(string(b))
			}
			if _, seen := out[inode]; !seen {
				out[inode] = Process{PID: pid, Name: name}
			}
		}
	}
	return out
}

// Entry is one allowlist line.
type Entry struct {
	Port   int    // 0 when EnvVar names it
	EnvVar string // env:VAR
	Proto  string // tcp, udp
	Class  string
	Note   string
	Source string // file:line
}

var classes = map[string]bool{"raw": true, "self-auth-http": true, "harness": true, "platform": true}

// ParseAllowlist reads one allowlist file; name labels errors.
func ParseAllowlist(r io.Reader, name string) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("%s:%d: want <port|env:VAR>/<proto> <class> <note>", name, n)
		}
		target, proto, ok := strings.Cut(f[0], "/")
		if !ok || (proto != "tcp" && proto != "udp") {
			return nil, fmt.Errorf("%s:%d: %q: want PORT/tcp or PORT/udp", name, n, f[0])
		}
		if !classes[f[1]] {
			return nil, fmt.Errorf("%s:%d: class %q: want raw, self-auth-http, harness or platform", name, n, f[1])
		}
		e := Entry{Proto: proto, Class: f[1], Note: strings.Join(f[2:], " "), Source: fmt.Sprintf("%s:%d", name, n)}
		if v, isEnv := strings.CutPrefix(target, "env:"); isEnv {
			if v == "" {
				return nil, fmt.Errorf("%s:%d: env: names no variable", name, n)
			}
			e.EnvVar = v
		} else if p, err := strconv.Atoi(target); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("%s:%d: port %q: want 1-65535 or env:VAR", name, n, target)
		} else {
			e.Port = p
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// LoadAllowlist reads dir/*.conf in name order; a missing dir is empty.
func LoadAllowlist(dir string) ([]Entry, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	sort.Strings(files)
	var out []Entry
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		es, err := ParseAllowlist(fh, f)
		fh.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

// allowedTCP resolves the allowlist's TCP ports with getenv.
func allowedTCP(allow []Entry, getenv func(string) string) map[int]bool {
	ports := map[int]bool{}
	for _, e := range allow {
		if e.Proto != "tcp" {
			continue
		}
		p := e.Port
		if e.EnvVar != "" {
			n, err := strconv.Atoi(strings.TrimSpace(getenv(e.EnvVar)))
			if err != nil || n < 1 || n > 65535 {
				continue // unset or not a port: allows nothing
			}
			p = n
		}
		ports[p] = true
	}
	return ports
}

// Exposure is a listener past the portal.
type Exposure struct {
	Program string `json:"program"` // "" when its owner was not found
	PID     int    `json:"pid,omitempty"`
	Address string `json:"address"` // 0.0.0.0, ::, or a specific one
	Port    int    `json:"port"`
}

func (e Exposure) String() string {
	who := e.Program
	if who == "" {
		who = "an unknown process"
	} else {
		who = fmt.Sprintf("%s (pid %d)", e.Program, e.PID)
	}
	return fmt.Sprintf("%s listens on %s port %d/tcp, reachable without the portal's authentication", who, e.Address, e.Port)
}

// Find lists the exposed listeners among sockets, owners telling whose
// they are: not on a loopback address, not caddy's, not allowlisted.
// Sorted by port, one per port and program.
func Find(sockets []Socket, owners map[uint64]Process, allow []Entry, getenv func(string) string) []Exposure {
	ok := allowedTCP(allow, getenv)
	seen := map[string]bool{}
	var out []Exposure
	for _, s := range sockets {
		if s.Addr.IsLoopback() || ok[s.Port] {
			continue
		}
		p := owners[s.Inode]
		if p.Name == Trusted {
			continue
		}
		key := fmt.Sprintf("%d/%s", s.Port, p.Name)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, Exposure{Program: p.Name, PID: p.PID, Address: s.Addr.String(), Port: s.Port})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Program < out[j].Program
	})
	return out
}

// Scan is Find over procDir's net/tcp, net/tcp6 and processes.
func Scan(procDir string, allow []Entry, getenv func(string) string) ([]Exposure, error) {
	var sockets []Socket
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		fh, err := os.Open(filepath.Join(procDir, f))
		if os.IsNotExist(err) {
			continue // no IPv6
		} else if err != nil {
			return nil, err
		}
		s, err := ParseNetTCP(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(procDir, f), err)
		}
		sockets = append(sockets, s...)
	}
	if len(sockets) == 0 {
		return nil, nil
	}
	return Find(sockets, Owners(procDir), allow, getenv), nil
}
