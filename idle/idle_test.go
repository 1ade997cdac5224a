package idle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want Config
		err  string
	}{
		{env: nil, want: Config{GPUUtil: 5, Command: DefaultCommand}},
		{env: map[string]string{StopAfterEnv: "30m", GPUUtilEnv: "10%", CommandEnv: "touch /tmp/x"}, want: Config{StopAfter: 30 * time.Minute, GPUUtil: 10, Command: "touch /tmp/x"}},
		{env: map[string]string{StopAfterEnv: "0"}, want: Config{GPUUtil: 5, Command: DefaultCommand}},
		{env: map[string]string{StopAfterEnv: "soon"}, err: StopAfterEnv + `: "soon"`},
		{env: map[string]string{StopAfterEnv: "-5m"}, err: "must not be negative"},
		{env: map[string]string{StopAfterEnv: "5s"}, err: "at least 10s"},
		{env: map[string]string{GPUUtilEnv: "101"}, err: GPUUtilEnv + `: "101": want a percentage`},
		{env: map[string]string{GPUUtilEnv: "NaN"}, err: "want a percentage"},
	} {
		got, err := FromEnv(func(k string) string { return tc.env[k] })
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v %v, want %+v", tc.env, got, err, tc.want)
		}
	}
}

// TestMachine walks the state machine through a table of observations,
// one per step of a fake clock (window 20 s: warning at 15 s).
func TestMachine(t *testing.T) {
	cfg := Config{StopAfter: 20 * time.Second, GPUUtil: 5, Command: "x"}
	t0 := time.Unix(1000, 0)
	type step struct {
		at   int // seconds after t0
		a    Activity
		want Decision
		sum  string // substring of Status().Summary, when set
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"no traffic: warn once, stop once, never again", []step{
			{at: 0, sum: "idle for 0 s, stops at 20 s"},
			{at: 14},
			{at: 15, want: Decision{Warn: true}},
			{at: 16},
			{at: 20, want: Decision{Stop: true}, sum: "the stop command ran"},
			{at: 25}, {at: 60}, {at: 3600},
		}},
		{"requests keep it busy", []step{
			{at: 0, a: Activity{Requests: 1}},
			{at: 10, a: Activity{Requests: 2}, sum: "busy: requests"},
			{at: 20, a: Activity{Requests: 3}},
			{at: 34, a: Activity{Requests: 3}},
			{at: 35, a: Activity{Requests: 3}, want: Decision{Warn: true}},
			{at: 40, a: Activity{Requests: 3}, want: Decision{Stop: true}},
		}},
		{"an open stream, SSH, GPU, provisioning each keep it busy", []step{
			{at: 25, a: Activity{Streams: 1}, sum: "1 open stream(s)"},
			{at: 50, a: Activity{SSHSessions: 2}, sum: "2 SSH session(s)"},
			{at: 75, a: Activity{GPUUtil: ptr(37.0)}, sum: "GPU at 37%"},
			{at: 100, a: Activity{Provisioning: true}, sum: "provisioning"},
			{at: 110, a: Activity{GPUUtil: ptr(4.9)}},
			{at: 120, a: Activity{GPUUtil: ptr(1.0)}, want: Decision{Warn: true, Stop: true}},
		}},
		{"activity after a stop opens a new idle period", []step{
			{at: 20, want: Decision{Warn: true, Stop: true}},
			{at: 21, a: Activity{Streams: 1}},
			{at: 41, want: Decision{Warn: true, Stop: true}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(cfg, t0)
			for _, s := range tc.steps {
				now := t0.Add(time.Duration(s.at) * time.Second)
				if got := m.Observe(now, s.a); got != s.want {
					t.Errorf("t=%ds %+v: %+v, want %+v", s.at, s.a, got, s.want)
				}
				if st := m.Status(now); s.sum != "" && !strings.Contains(st.Summary, s.sum) {
					t.Errorf("t=%ds: summary %q, want %q", s.at, st.Summary, s.sum)
				}
			}
		})
	}
}

func TestPostponeAndStatus(t *testing.T) {
	cfg := Config{StopAfter: 30 * time.Minute, GPUUtil: 5}
	t0 := time.Unix(0, 0)
	m := New(cfg, t0)
	m.Observe(t0.Add(12*time.Minute), Activity{})
	st := m.Status(t0.Add(12 * time.Minute))
	if st.Summary != "idle for 12 min, stops at 30 min" || st.StopsAt == nil || !st.StopsAt.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("status: %+v", st)
	}
	if d := m.Observe(t0.Add(25*time.Minute), Activity{}); !d.Warn {
		t.Errorf("warning due 5 min before: %+v", d)
	}
	m.Postpone(t0.Add(29 * time.Minute))
	if d := m.Observe(t0.Add(31*time.Minute), Activity{}); d != (Decision{}) {
		t.Errorf("postponed: %+v", d)
	}
	if d := m.Observe(t0.Add(59*time.Minute), Activity{}); d != (Decision{Warn: true, Stop: true}) {
		t.Errorf("one window after the postponement: %+v", d)
	}
	m.Ran("exit status 0")
	st = m.Status(t0.Add(60 * time.Minute))
	if !st.Ran || st.LastOutcome != "exit status 0" || st.LastRun == nil || st.StopsAt != nil {
		t.Errorf("after the run: %+v", st)
	}
	off := New(Config{GPUUtil: 5}, t0)
	if d := off.Observe(t0.Add(time.Hour), Activity{}); d != (Decision{}) || off.Status(t0).Enabled {
		t.Errorf("off: %+v", d)
	}
}

// TestMachineRealClockInBubble runs the machine on synctest's fake clock,
// observing every second as the portal does: the command is asked for
// exactly once in an hour of silence.
func TestMachineRealClockInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(Config{StopAfter: 20 * time.Second, GPUUtil: 5}, time.Now())
		stops, warns := 0, 0
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for range 3600 {
			now := <-tick.C
			d := m.Observe(now, Activity{})
			if d.Stop {
				stops++
			}
			if d.Warn {
				warns++
			}
		}
		if stops != 1 || warns != 1 {
			t.Errorf("stops %d, warns %d: want 1 each", stops, warns)
		}
	})
}

func TestIsSSHSession(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want bool
	}{
		{"sshd: root@pts/0", true},
		{"sshd: user@notty", true},
		{"sshd-session: root@pts/3", true},
		{"sshd: root [priv]", false},
		{"sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", false},
		{"sshd: [accepted]", false},
		{"sshd: root [net]", false},
		{"/usr/sbin/sshd\x00-D\x00", false},
		{"bash\x00-c\x00sshd: root@pts/0", false},
		{"sshd: @pts/0", false},
		{"", false},
	} {
		if got := IsSSHSession([]byte(tc.cmd)); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.cmd, got, tc.want)
		}
	}
}

func TestSSHSessions(t *testing.T) {
	root := t.TempDir()
	for pid, cmd := range map[string]string{"1": "/usr/sbin/sshd\x00-D\x00", "20": "sshd: root@pts/0", "21": "sshd: root [priv]", "22": "sshd-session: bob@notty", "self": "sshd: root@pts/9"} {
		_ = os.MkdirAll(filepath.Join(root, pid), 0o755)
		if err := os.WriteFile(filepath.Join(root, pid, "cmdline"), []byte(cmd), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n := SSHSessions(root); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
	if n := SSHSessions(filepath.Join(root, "missing")); n != 0 {
		t.Errorf("missing /proc: %d", n)
	}
}

func FuzzIsSSHSession(f *testing.F) {
	for _, s := range []string{"sshd: root@pts/0", "sshd: root [priv]", "sshd-session: a@notty", "sshd: ", "sshd: @", "x\x00y"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if IsSSHSession(b) && !strings.Contains(string(b), "@") {
			t.Errorf("%q: a session without user@tty", b)
		}
	})
}

// BenchmarkCounters is the cost the request path pays: one Request and a
// StreamOpen/StreamClose pair, as the idle_activity handler does.
func BenchmarkCounters(b *testing.B) {
	var c Counters
	b.Run("request", func(b *testing.B) {
		for b.Loop() {
			c.Request()
		}
	})
	b.Run("request-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Request()
				c.StreamOpen()
				c.StreamClose()
			}
		})
	})
}
