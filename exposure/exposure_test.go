package exposure

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const allowText = `# a comment
22/tcp      raw             sshd
21027/udp   raw             syncthing discovery

env:VAST_TCP_PORT_72299/tcp  raw  syncthing sync
env:UNSET_PORT/tcp  raw  allows nothing
`

// fakeProc lays out a /proc: net/tcp and net/tcp6 from testdata, and
// processes whose fd links name socket inodes.
func fakeProc(t *testing.T, procs map[int]struct {
	name    string
	sockets []uint64
}) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "net"), 0o755)
		os.WriteFile(filepath.Join(dir, "net", f), b, 0o644)
	}
	for pid, p := range procs {
		pd := filepath.Join(dir, fmt.Sprint(pid))
		os.MkdirAll(filepath.Join(pd, "fd"), 0o755)
		os.WriteFile(filepath.Join(pd, "comm"), []byte(p.name+"\n"), 0o644)
		os.Symlink("/dev/null", filepath.Join(pd, "fd", "0"))
		for i, ino := range p.sockets {
			os.Symlink(fmt.Sprintf("socket:[%d]", ino), filepath.Join(pd, "fd", fmt.Sprint(i+3)))
		}
	}
	return dir
}

func TestScanFixtures(t *testing.T) {
	proc := fakeProc(t, map[int]struct {
		name    string
		sockets []uint64
	}{
		10: {"caddy", []uint64{1001, 1002, 2004}},
		20: {"python3", []uint64{1003}},
		30: {"sshd", []uint64{1006}},
		40: {"syncthing", []uint64{1007}},
		50: {"tensorboard", []uint64{2002}},
		60: {"bash", nil},
	})
	allow, err := ParseAllowlist(strings.NewReader(allowText), "00-base.conf")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VAST_TCP_PORT_72299": "47523"}
	got, err := Scan(proc, allow, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := []Exposure{
		{Program: "tensorboard", PID: 50, Address: "::", Port: 6667},
		{Program: "", Address: "10.0.0.2", Port: 7777},
		{Program: "python3", PID: 20, Address: "0.0.0.0", Port: 8080},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Scan:\n%+v\nwant\n%+v", got, want)
	}
	if s := got[2].String(); s != "python3 (pid 20) listens on 0.0.0.0 port 8080/tcp, reachable without the portal's authentication" {
		t.Errorf("String: %s", s)
	}
	// Without the variable, the sync port is not allowed.
	got, _ = Scan(proc, allow, func(string) string { return "" })
	if len(got) != 4 || got[3].Program != "syncthing" {
		t.Errorf("unset env:VAR must allow nothing: %+v", got)
	}
}

func TestParseNetTCP(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Socket
		err  string
	}{
		{in: "  sl local\n   0: 0100007F:0050 00000000:0000 0A 0:0 0:0 0 0 0 77 1\n",
			want: []Socket{{netip.MustParseAddr("127.0.0.1"), 80, 77}}},
		{in: "   0: 00000000000000000000000001000000:0050 0:0 0A a b c d e 78\n",
			want: []Socket{{netip.MustParseAddr("::1"), 80, 78}}},
		{in: "   0: 0100007F:0050 0:0 01 a b c d e 79\n"}, // not LISTEN
		{in: "   0: 0100007F 0:0 0A a b c d e 80\n", err: "no port"},
		{in: "   0: 01007F:0050 0:0 0A a b c d e 80\n", err: "hex digits"},
		{in: "   0: 0100007F:0050 0:0 0A\n", err: "fields"},
		{in: "   0: 0100007F:0050 0:0 0A a b c d e x\n", err: "inode"},
	} {
		got, err := ParseNetTCP(strings.NewReader(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseNetTCP(f *testing.F) {
	b, _ := os.ReadFile("testdata/tcp6")
	f.Add(string(b))
	f.Add("   0: 0100007F:0050 0:0 0A a b c d e 77\n")
	f.Fuzz(func(t *testing.T, s string) {
		socks, err := ParseNetTCP(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, so := range socks {
			if !so.Addr.IsValid() || so.Port < 0 || so.Port > 65535 {
				t.Fatalf("bad socket %+v", so)
			}
		}
	})
}

func TestParseAllowlist(t *testing.T) {
	got, err := ParseAllowlist(strings.NewReader(allowText), "00-base.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0] != (Entry{Port: 22, Proto: "tcp", Class: "raw", Note: "sshd", Source: "00-base.conf:2"}) ||
		got[2].EnvVar != "VAST_TCP_PORT_72299" || got[2].Note != "syncthing sync" {
		t.Fatalf("%+v", got)
	}
	for line, want := range map[string]string{
		"22 raw x":             "want PORT/tcp",
		"22/sctp raw x":        "want PORT/tcp",
		"22/tcp open x":        "class \"open\"",
		"99999/tcp raw x":      "want 1-65535",
		"env:/tcp raw x":       "names no variable",
		"22/tcp":               "want <port|env:VAR>",
		"abc/tcp raw sshd etc": "port \"abc\"",
	} {
		_, err := ParseAllowlist(strings.NewReader("# c\n"+line+"\n"), "50-x.conf")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "50-x.conf:2") {
			t.Errorf("%q: %v, want %q at 50-x.conf:2", line, err, want)
		}
	}
}

func FuzzParseAllowlist(f *testing.F) {
	f.Add(allowText)
	f.Add("env:X/udp platform\n")
	f.Fuzz(func(t *testing.T, s string) {
		es, err := ParseAllowlist(strings.NewReader(s), "f")
		if err != nil {
			return
		}
		for _, e := range es {
			if (e.Port == 0) == (e.EnvVar == "") {
				t.Fatalf("entry with neither or both of port and env: %+v", e)
			}
		}
	})
}

// A real listener of this process on every address is found, named by
// this process's name; one on loopback is not.
func TestScanRealListener(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp")
	}
	open, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	local, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	openPort, localPort := open.Addr().(*net.TCPAddr).Port, local.Addr().(*net.TCPAddr).Port
	comm, _ := os.ReadFile("/proc/self/comm")
	got, err := Scan(DefaultProcDir, nil, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range got {
		if e.Port == localPort {
			t.Errorf("a loopback listener reported: %+v", e)
		}
		if e.Port == openPort {
			found = true
			if e.PID != os.Getpid() || e.Program != strings.TrimSpace(string(comm)) || e.Address != "0.0.0.0" {
				t.Errorf("%+v, want pid %d program %q on 0.0.0.0", e, os.Getpid(), comm)
			}
		}
	}
	if !found {
		t.Fatalf("the listener on 0.0.0.0:%d was not found in %+v", openPort, got)
	}
	// Allowlisted, it is not reported.
	allow := []Entry{{Port: openPort, Proto: "tcp", Class: "raw"}}
	got, _ = Scan(DefaultProcDir, allow, os.Getenv)
	for _, e := range got {
		if e.Port == openPort {
			t.Errorf("an allowlisted port reported: %+v", e)
		}
	}
}
