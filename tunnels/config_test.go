package tunnels

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/confdecl"
)

func TestConfigDefaultsValidate(t *testing.T) {
	if err := Default().Check(); err != nil {
		t.Fatalf("Default() does not validate: %v", err)
	}
	c := Config{ReadyTimeout: ms(100)}.WithDefaults()
	if c.ReadyTimeout != ms(100) || c.KillGrace != Default().KillGrace || c.Cloudflared != "cloudflared" || c.MaxTunnels != 16 {
		t.Fatalf("WithDefaults: %+v", c)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	cases := []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"protocol", func(c *Config) { c.Protocol = "carrier-pigeon" }, `protocol: "carrier-pigeon": want auto, http2, quic`},
		{"negative duration", func(c *Config) { c.KillGrace = -ms(1) }, "kill_grace: must not be negative, got -1ms"},
		{"negative interval", func(c *Config) { c.CreateInterval = -ms(1) }, "create_interval: must not be negative"},
		{"backoff order", func(c *Config) { c.BackoffBase, c.BackoffMax = ms(60000), ms(1000) }, "backoff_max: 1s is less than backoff_base 1m"},
		{"max tunnels", func(c *Config) { c.MaxTunnels = -1 }, "max_tunnels: must not be negative, got -1"},
		{"burst", func(c *Config) { c.CreateBurst = -2 }, "create_burst: must not be negative, got -2"},
		{"remote quick target", func(c *Config) { c.Quick = []string{"http://localhost:1", "http://example.com:80"} }, `quick[1]: invalid tunnel target "http://example.com:80": host must be localhost`},
		{"literal token", func(c *Config) { c.NamedToken = "eyJsecret" }, "named_token: must be a placeholder such as {env.CF_TUNNEL_TOKEN}, not a literal token"},
		{"two placeholders", func(c *Config) { c.NamedToken = "{a}{b}" }, "named_token: must be a placeholder"},
		{"app port", func(c *Config) { c.Apps = []App{{Name: "A", InternalPort: 70000}} }, "apps[0].internal_port: 70000 is not a port"},
		{"app scheme", func(c *Config) { c.Apps = []App{{Name: "A", Scheme: "ftp"}} }, `apps[0].scheme: "ftp": want http or https`},
	}
	for _, c := range cases {
		cfg := Default()
		c.set(&cfg)
		err := cfg.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v, want it to contain %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "eyJsecret") {
			t.Errorf("%s: the error repeats the token: %v", c.name, err)
		}
	}
	// Every failure is reported at once.
	cfg := Default()
	cfg.Protocol, cfg.PollInterval = "x", -1
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "protocol:") || !strings.Contains(err.Error(), "poll_interval:") {
		t.Fatalf("two bad fields: %v", err)
	}
}

func TestConfigJSONIsTheDocumentedShape(t *testing.T) {
	var c Config
	in := `{"cloudflared":"cf","quick":["http://localhost:8080"],"named_token":"{env.CF_TUNNEL_TOKEN}",` +
		`"ready_timeout":"30s","backoff_max":60000000000,"max_tunnels":3,` +
		`"apps":[{"name":"Jupyter","internal_port":18080,"external_port":8080,"served":true,"tunnel_port":8080,"scheme":"http"}]}`
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.ReadyTimeout != ms(30000) || c.BackoffMax != confdecl.Duration(time.Minute) || c.MaxTunnels != 3 || c.Apps[0].TunnelPort != 8080 {
		t.Fatalf("decoded %+v", c)
	}
	out, _ := json.Marshal(Config{KillGrace: ms(1500)})
	if string(out) != `{"kill_grace":"1.5s"}` {
		t.Fatalf("zero settings must be left out of the JSON: %s", out)
	}
}

func TestIdentityIgnoresTimingsAndLimits(t *testing.T) {
	a := Config{Cloudflared: "cf", LogDir: "/l"}
	b := Config{Cloudflared: "cf", LogDir: "/l", ReadyTimeout: ms(1), MaxTunnels: 2, Quick: []string{"http://localhost:1"}}
	if a.Identity() != b.Identity() {
		t.Fatalf("%s != %s", a.Identity(), b.Identity())
	}
	if a.Identity() == (Config{Cloudflared: "cf", LogDir: "/other"}).Identity() {
		t.Fatal("a different log dir must be a different manager")
	}
	// The default protocol and binary are the same manager as naming them.
	if (Config{}).Identity() != (Config{Cloudflared: "cloudflared", Protocol: "http2"}).Identity() {
		t.Fatal("defaults not applied in Identity")
	}
}

func TestReconfigureKeepsIdentity(t *testing.T) {
	m := NewManager(Config{Cloudflared: "cf", LogDir: "/l"}, nil)
	defer m.Close()
	m.Reconfigure(Config{Cloudflared: "other", LogDir: "/x", ReadyTimeout: ms(7), MaxTunnels: 2})
	c := m.Config()
	if c.Cloudflared != "cf" || c.LogDir != "/l" || c.ReadyTimeout != ms(7) || c.MaxTunnels != 2 || c.KillGrace != Default().KillGrace {
		t.Fatalf("after Reconfigure: %+v", c)
	}
}

func TestAdviseTarget(t *testing.T) {
	apps := []App{
		{Name: "Instance Portal", InternalPort: 11111, ExternalPort: 1111, Served: true, TunnelPort: 1111, Scheme: "http"},
		{Name: "Jupyter", InternalPort: 18080, ExternalPort: 8080, Served: true, TunnelPort: 8080, Scheme: "https"},
		{Name: "Jupyter Terminal", InternalPort: 8080, ExternalPort: 8080, Served: true, TunnelPort: 8080, Scheme: "https"},
		{Name: "Syncthing", InternalPort: 8384, ExternalPort: 8384, TunnelPort: 8384, Scheme: "http"},
		{Name: "Hidden", InternalPort: 17860, ExternalPort: 7860},
	}
	cases := []struct {
		target, warn, suggested string
	}{
		{"http://localhost:11111", `port 11111 is the internal port of "Instance Portal"`, "http://localhost:1111"},
		{"http://127.0.0.1:18080", `tunnel https://localhost:8080 (its external port, behind the portal) instead`, "https://localhost:8080"},
		{"http://localhost:17860", "the portal serves no authenticated port for it (external port 7860 is not published)", ""},
		{"http://localhost:8080", "", ""},  // the served port
		{"http://localhost:8384", "", ""},  // a link-only app's own port
		{"http://localhost:7860", "", ""},  // nobody's internal port
		{"http://localhost:12345", "", ""}, // not an app
	}
	for _, c := range cases {
		a := AdviseTarget(apps, c.target)
		if c.warn == "" && a.Warning != "" || !strings.Contains(a.Warning, c.warn) || a.SuggestedTarget != c.suggested {
			t.Errorf("%s: %+v; want warning with %q, suggestion %q", c.target, a, c.warn, c.suggested)
		}
		if a.Warning != "" && !strings.Contains(a.Warning, "without the portal's authentication") {
			t.Errorf("%s: the warning does not say what is wrong: %q", c.target, a.Warning)
		}
	}
	if a := AdviseTarget(nil, "http://localhost:18080"); a != (Advice{}) {
		t.Fatalf("no apps, yet %+v", a)
	}
}

func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if _, ok := b.take(t0, 3, 10*time.Second); !ok {
			t.Fatalf("take %d of a burst of 3 refused", i)
		}
	}
	if wait, ok := b.take(t0, 3, 10*time.Second); ok || wait != 10*time.Second {
		t.Fatalf("fourth take: ok=%v wait=%v, want a 10s wait", ok, wait)
	}
	if wait, ok := b.take(t0.Add(4*time.Second), 3, 10*time.Second); ok || wait != 6*time.Second {
		t.Fatalf("4s later: ok=%v wait=%v, want 6s", ok, wait)
	}
	if _, ok := b.take(t0.Add(10*time.Second), 3, 10*time.Second); !ok {
		t.Fatal("one token is back after an interval")
	}
	if _, ok := b.take(t0.Add(10*time.Second), 3, 10*time.Second); ok {
		t.Fatal("only one token came back")
	}
	if _, ok := b.take(t0.Add(time.Hour), 3, 10*time.Second); !ok {
		t.Fatal("a full bucket after an hour")
	}
}

type fixedClock struct{ now time.Time }

func (c *fixedClock) Now() time.Time                         { return c.now }
func (c *fixedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// TestCreateIsCappedAndPaced is issue 14's finding: the API created 40
// tunnels in a second, each starting cloudflared. Now the fifth creation in
// a row waits for create_interval, and none beyond max_tunnels is made;
// the config's own tunnels count but are never refused.
func TestCreateIsCappedAndPaced(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-cloudflared") // no process needed to count
	m := NewManager(Config{Cloudflared: missing, MaxTunnels: 7, CreateBurst: 4, CreateInterval: ms(10000)}, nil)
	defer m.Close()
	clock := &fixedClock{now: time.Unix(1_700_000_000, 0)}
	m.clock = clock
	for _, p := range []string{"http://localhost:1", "http://localhost:2"} {
		if _, _, err := m.Acquire("config-1", QuickSpec(p)); !errors.Is(err, ErrBinaryMissing) {
			t.Fatalf("config tunnel %s: %v", p, err)
		}
	}
	for i := range 4 {
		target := "http://localhost:" + []string{"10", "11", "12", "13"}[i]
		if _, created, err := m.Create(target); !errors.Is(err, ErrBinaryMissing) || !created {
			t.Fatalf("create %d: created=%v %v", i, created, err)
		}
	}
	_, _, err := m.Create("http://localhost:14")
	var slow *SlowDownError
	if !errors.As(err, &slow) || !errors.Is(err, ErrSlowDown) || slow.Wait != 10*time.Second ||
		!strings.Contains(err.Error(), "retry in 10s (create_burst 4, then one per create_interval 10s)") {
		t.Fatalf("fifth create in a row: %v", err)
	}
	// Creating a failed tunnel again starts a process: it is paced too.
	if _, created, err := m.Create("http://localhost:10"); created || !errors.Is(err, ErrSlowDown) {
		t.Fatalf("create of a failed target: created=%v %v", created, err)
	}
	clock.now = clock.now.Add(time.Hour)
	if _, _, err := m.Create("http://localhost:14"); !errors.Is(err, ErrBinaryMissing) {
		t.Fatalf("create once the interval passed: %v", err)
	}
	_, _, err = m.Create("http://localhost:15")
	if !errors.Is(err, ErrTooManyTunnels) || !strings.Contains(err.Error(), "7 quick tunnels run, the most allowed (max_tunnels); stop one first") {
		t.Fatalf("create beyond max_tunnels: %v", err)
	}
	if n := len(m.List()); n != 7 {
		t.Fatalf("%d tunnels listed, want 7", n)
	}
	// The config's tunnels still start beyond the cap.
	if _, _, err := m.Acquire("config-2", QuickSpec("http://localhost:3")); !errors.Is(err, ErrBinaryMissing) {
		t.Fatalf("config tunnel beyond the cap: %v", err)
	}
	if _, err := m.Stop("http://localhost:10"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stop("http://localhost:11"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Create("http://localhost:15"); !errors.Is(err, ErrBinaryMissing) {
		t.Fatalf("create after stopping two: %v", err)
	}
	// Refresh spends from the same bucket.
	for i := 0; ; i++ {
		_, err := m.Refresh("http://localhost:15")
		if errors.Is(err, ErrSlowDown) {
			if i != 2 {
				t.Fatalf("refresh refused after %d, want 2 (two of the 4 went to creates)", i)
			}
			break
		}
		if i > 10 {
			t.Fatal("refresh never paced")
		}
	}
}

// TestEveryDurationRefusesNegative sets each duration setting, found by
// type, to -1ms in turn: Validate must name that field.
func TestEveryDurationRefusesNegative(t *testing.T) {
	n := 0
	for _, f := range confdecl.Fields(Config{}) {
		cfg := Default()
		fv := reflect.ValueOf(&cfg).Elem().FieldByIndex(f.Index)
		if fv.Type() != reflect.TypeOf(confdecl.Duration(0)) {
			continue
		}
		n++
		fv.SetInt(int64(-time.Millisecond))
		if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), f.JSON+": must not be negative, got -1ms") {
			t.Errorf("%s = -1ms: %v", f.JSON, err)
		}
	}
	if n != 10 {
		t.Fatalf("%d duration settings, want 10", n)
	}
}

// FuzzAdviseTarget: whatever the target, a warning is given only for an
// app's internal port that is no app's tunnel port, and a suggested
// target is always a valid local target on that app's tunnel port.
func FuzzAdviseTarget(f *testing.F) {
	for _, s := range []string{"http://localhost:18080", "https://[::1]:11111", "http://127.0.0.1:8080", "http://localhost:0", "http://localhost:x", "%zz", ""} {
		f.Add(s)
	}
	apps := []App{
		{Name: "Portal", InternalPort: 11111, ExternalPort: 1111, Served: true, TunnelPort: 1111, Scheme: "https"},
		{Name: "Jupyter", InternalPort: 18080, ExternalPort: 8080, Served: true, TunnelPort: 8080, Scheme: "http"},
		{Name: "Link", InternalPort: 8384, ExternalPort: 8384, TunnelPort: 8384},
		{Name: "Hidden", InternalPort: 17860, ExternalPort: 7860},
	}
	f.Fuzz(func(t *testing.T, target string) {
		a := AdviseTarget(apps, target)
		if a.Warning == "" {
			if a.SuggestedTarget != "" {
				t.Fatalf("%q: a suggestion without a warning: %+v", target, a)
			}
			return
		}
		norm, err := NormalizeTarget(target)
		if err != nil {
			t.Fatalf("%q: warned about a target that is not valid: %+v", target, a)
		}
		if !strings.HasSuffix(norm, ":18080") && !strings.HasSuffix(norm, ":11111") && !strings.HasSuffix(norm, ":17860") {
			t.Fatalf("%q: warned about a port that is no app's internal port: %+v", target, a)
		}
		if a.SuggestedTarget != "" {
			if s, err := NormalizeTarget(a.SuggestedTarget); err != nil || s != a.SuggestedTarget ||
				!(strings.HasSuffix(s, ":8080") || strings.HasSuffix(s, ":1111")) {
				t.Fatalf("%q: suggestion %q is not an app's served port (%v)", target, a.SuggestedTarget, err)
			}
		}
	})
}

// TestAdminPortIsNeverTunnelled: a tunnel to Caddy's admin port is refused
// by the API (Manager.Create, any host or scheme spelling) and in the
// config's own quick list; other ports are not affected.
func TestAdminPortIsNeverTunnelled(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-cloudflared") // no process needed
	m := NewManager(Config{Cloudflared: missing, AdminPort: 2019}, nil)
	defer m.Close()
	for _, target := range []string{"http://localhost:2019", "https://127.0.0.1:2019", "http://[::1]:2019/"} {
		_, created, err := m.Create(target)
		if created || !errors.Is(err, ErrInvalidTarget) || !strings.Contains(err.Error(), "admin API") {
			t.Errorf("Create(%q): created=%v err=%v, want ErrInvalidTarget naming the admin API", target, created, err)
		}
	}
	if len(m.List()) != 0 {
		t.Errorf("tunnels listed after refusals: %v", m.List())
	}
	if _, _, err := m.Create("http://localhost:2020"); !errors.Is(err, ErrBinaryMissing) {
		t.Errorf("Create of another port: %v, want it attempted (ErrBinaryMissing)", err)
	}
	err := Config{AdminPort: 2019, Quick: []string{"http://localhost:2019"}}.WithDefaults().Check()
	if err == nil || !strings.Contains(err.Error(), "quick[0]") || !strings.Contains(err.Error(), "admin API") {
		t.Errorf("Check with the admin port in quick: %v", err)
	}
	if err := (Config{AdminPort: 70000}).WithDefaults().Check(); err == nil || !strings.Contains(err.Error(), "admin_port") {
		t.Errorf("Check with admin_port 70000: %v", err)
	}
}
