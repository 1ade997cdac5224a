package portallinks

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseFileGood(t *testing.T) {
	data := `
- label: Model hub
  url: https://huggingface.co/models
  description: |
    Browse models.
    Two lines.
  icon: Cube
  button_text: Browse
  position: before
  links:
    - label: Datasets
      url: https://huggingface.co/datasets
- label: 2024
  url: http://localhost:7860/path?q=1#x
`
	cards, warns := parseFile([]byte(data), "links.yaml")
	if len(warns) != 0 {
		t.Fatalf("warnings: %q", warns)
	}
	want := []Card{
		{Source: "file", Label: "Model hub", URL: "https://huggingface.co/models", Description: "Browse models.\nTwo lines.",
			Icon: "cube", ButtonText: "Browse", Position: "before", Links: []Link{{"Datasets", "https://huggingface.co/datasets"}}},
		{Source: "file", Label: "2024", URL: "http://localhost:7860/path?q=1#x", Icon: "link", ButtonText: "Open", Position: "after"},
	}
	if !reflect.DeepEqual(cards, want) {
		t.Fatalf("got  %+v\nwant %+v", cards, want)
	}
}

func TestParseFileWarnings(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		cards int
		warns []string
	}{
		{"empty file", "", 0, nil},
		{"only a comment", "# nothing yet\n", 0, nil},
		{"null document", "---\n", 0, nil},
		{"not YAML", "- label: [unclosed\n", 0, []string{"f.yaml: not valid YAML (yaml: line 1: did not find expected ',' or ']'); file skipped"}},
		{"a mapping, not a list", "label: x\nurl: https://x\n", 0, []string{"f.yaml:1: want a list of entries (- label: …, url: …); file skipped"}},
		{"a scalar entry", "- just text\n", 0, []string{"f.yaml:1: entry 1: want a mapping with label and url; entry skipped"}},
		{"missing url", "- label: A\n", 0, []string{`f.yaml:1: entry 1 ("A"): url: missing; entry skipped`}},
		{"missing label", "- url: https://x\n", 0, []string{"f.yaml:1: entry 1: label: missing; entry skipped"}},
		{"ftp url", "- label: FTP\n  url: ftp://x\n", 0, []string{`f.yaml:1: entry 1 ("FTP"): url: "ftp://x": want an http or https URL; entry skipped`}},
		{"javascript url", "- label: J\n  url: javascript:alert(1)\n", 0, []string{`f.yaml:1: entry 1 ("J"): url: "javascript:alert(1)": want an http or https URL; entry skipped`}},
		{"relative url", "- label: R\n  url: /path\n", 0, []string{`f.yaml:1: entry 1 ("R"): url: "/path": want an http or https URL; entry skipped`}},
		{"url without host", "- label: H\n  url: 'https:///x'\n", 0, []string{`f.yaml:1: entry 1 ("H"): url: "https:///x": want an http or https URL; entry skipped`}},
		{"url with a space", "- label: S\n  url: https://x/a b\n", 0, []string{`f.yaml:1: entry 1 ("S"): url: "https://x/a b": contains spaces or control characters; entry skipped`}},
		{"null url", "- label: N\n  url:\n", 0, []string{`f.yaml:1: entry 1 ("N"): url: want text; entry skipped`}},
		{"bad icon", "- label: I\n  url: https://x\n  icon: skull\n", 0, []string{`f.yaml:1: entry 1 ("I"): icon: "skull": want one of link, book, code, terminal, cube, globe, tool, tag, grid, gpu, rocket, image, download, star, zap, database; entry skipped`}},
		{"bad position", "- label: P\n  url: https://x\n  position: middle\n", 0, []string{`f.yaml:1: entry 1 ("P"): position: "middle": want before or after; entry skipped`}},
		{"empty button text", "- label: B\n  url: https://x\n  button_text: ' '\n", 0, []string{`f.yaml:1: entry 1 ("B"): button_text: missing; entry skipped`}},
		{"label too long", "- label: " + strings.Repeat("x", 81) + "\n  url: https://x\n", 0, []string{"f.yaml:1: entry 1: label: longer than 80 characters; entry skipped"}},
		{"control character in label", "- label: \"a\\u0007b\"\n  url: https://x\n", 0, []string{`f.yaml:1: entry 1: label: "a\ab": contains control characters; entry skipped`}},
		{"label is a list", "- label: [a]\n  url: https://x\n", 0, []string{"f.yaml:1: entry 1: label: want text; entry skipped"}},
		{"duplicate key", "- label: D\n  url: https://x\n  url: https://y\n", 0, []string{`f.yaml:1: entry 1 ("D"): url: given twice; entry skipped`}},
		{"links not a list", "- label: L\n  url: https://x\n  links: https://y\n", 0, []string{`f.yaml:1: entry 1 ("L"): links: want a list of {label, url}; entry skipped`}},
		{"two errors in one entry", "- label: T\n  url: ftp://x\n  icon: nope\n", 0, []string{`f.yaml:1: entry 1 ("T"): url: "ftp://x": want an http or https URL; icon: "nope": want one of link, book, code, terminal, cube, globe, tool, tag, grid, gpu, rocket, image, download, star, zap, database; entry skipped`}},
		{"unknown key is ignored", "- label: U\n  url: https://x\n  colour: red\n", 1, []string{`f.yaml:1: entry 1 ("U"): unknown key "colour" ignored`}},
		{"bad secondary link is dropped", "- label: K\n  url: https://x\n  links:\n    - label: ok\n      url: https://ok\n    - label: bad\n      url: file:///etc/passwd\n    - url: https://nolabel\n", 1, []string{
			`f.yaml:1: entry 1 ("K"): links[2] (line 6): url: "file:///etc/passwd": want an http or https URL; link dropped`,
			`f.yaml:1: entry 1 ("K"): links[3] (line 8): label: missing; link dropped`,
		}},
		{"good entries around a bad one", "- label: A\n  url: https://a\n- label: B\n- label: C\n  url: https://c\n", 2, []string{`f.yaml:3: entry 2 ("B"): url: missing; entry skipped`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cards, warns := parseFile([]byte(tt.data), "f.yaml")
			if len(cards) != tt.cards {
				t.Errorf("got %d cards, want %d: %+v", len(cards), tt.cards, cards)
			}
			if !reflect.DeepEqual(warns, tt.warns) {
				t.Errorf("warnings:\n got  %q\n want %q", warns, tt.warns)
			}
		})
	}
}

func TestParseFileBounds(t *testing.T) {
	var b strings.Builder
	for i := 0; i < maxCards+5; i++ {
		b.WriteString("- label: x\n  url: https://x\n")
	}
	cards, warns := parseFile([]byte(b.String()), "f.yaml")
	if len(cards) != maxCards || len(warns) != 1 || !strings.Contains(warns[0], "more than 100 entries; the rest skipped") {
		t.Fatalf("%d cards, warnings %q", len(cards), warns)
	}
}

func TestParseInline(t *testing.T) {
	cards, warns := parseInline(" Docs|https://docs.example.com|Read | the docs , ,Bad|ftp://x,NoURL,Two|http://localhost:8080")
	want := []Card{
		{Source: "env", Label: "Docs", URL: "https://docs.example.com", Description: "Read | the docs", Icon: "link", ButtonText: "Open", Position: "after"},
		{Source: "env", Label: "Two", URL: "http://localhost:8080", Icon: "link", ButtonText: "Open", Position: "after"},
	}
	if !reflect.DeepEqual(cards, want) {
		t.Errorf("got  %+v\nwant %+v", cards, want)
	}
	wantWarns := []string{
		`PORTAL_LINKS: entry 2 ("Bad|ftp://x"): url: "ftp://x": want an http or https URL; entry skipped`,
		`PORTAL_LINKS: entry 3 ("NoURL"): want Label|URL or Label|URL|Description; entry skipped`,
	}
	if !reflect.DeepEqual(warns, wantWarns) {
		t.Errorf("warnings:\n got  %q\n want %q", warns, wantWarns)
	}
	if c, w := parseInline(""); c != nil || w != nil {
		t.Errorf("empty: %v %v", c, w)
	}
	if _, w := parseInline("|https://x"); len(w) != 1 || !strings.Contains(w[0], "label: missing") {
		t.Errorf("empty label: %q", w)
	}
}

func TestBuiltin(t *testing.T) {
	cfg := Config{Username: "alice", SSHHost: "203.0.113.7", SSHPort: 40022, PortalPort: 11111}
	cards := Builtin(cfg, "https://portal.example.com:1111")
	ids := []string{}
	for _, c := range cards {
		ids = append(ids, c.ID)
		if c.Source != SourceBuiltin || c.Label == "" || !validIcon(c.Icon) {
			t.Errorf("card %+v", c)
		}
	}
	if !reflect.DeepEqual(ids, []string{"login", "ssh", "api", "prometheus", "docs"}) {
		t.Fatalf("ids %v", ids)
	}
	byID := map[string]Card{}
	for _, c := range cards {
		byID[c.ID] = c
	}
	if !strings.Contains(byID["login"].Description, "User name: alice.") || !strings.Contains(byID["login"].Description, "OPEN_BUTTON_TOKEN") {
		t.Errorf("login: %+v", byID["login"])
	}
	if got := byID["ssh"].Snippet; got != "ssh -p 40022 root@203.0.113.7 -L 11111:localhost:11111\n# then open http://localhost:11111/" {
		t.Errorf("ssh snippet %q", got)
	}
	if !strings.Contains(byID["api"].Snippet, `curl -H "Authorization: Bearer $TOKEN" https://portal.example.com:1111/api/apps`) {
		t.Errorf("api snippet %q", byID["api"].Snippet)
	}
	prom := byID["prometheus"].Snippet
	if !strings.Contains(prom, "scheme: https") || !strings.Contains(prom, `targets: ["portal.example.com:1111"]`) || !strings.Contains(prom, "metrics_path: /metrics") {
		t.Errorf("prometheus snippet %q", prom)
	}
	if d := byID["docs"]; d.URL != Default().DocsURL || d.ButtonText != "Open" {
		t.Errorf("docs %+v", d)
	}

	// Defaults, an origin without a port, and the placeholders.
	cards = Builtin(Config{}, "https://abc.trycloudflare.com")
	for _, c := range cards {
		switch c.ID {
		case "ssh":
			if !strings.HasPrefix(c.Snippet, "ssh -p <ssh-port> root@<instance-ip> -L 11111:localhost:11111") {
				t.Errorf("default ssh %q", c.Snippet)
			}
		case "prometheus":
			if !strings.Contains(c.Snippet, `targets: ["abc.trycloudflare.com:443"]`) {
				t.Errorf("tunnel prometheus %q", c.Snippet)
			}
		case "login":
			if !strings.Contains(c.Description, "User name: vastai.") {
				t.Errorf("default login %q", c.Description)
			}
		}
	}
	// A Host header is the client's to choose: anything odd falls back.
	for _, origin := range []string{"", "ftp://x", "http://a b", "http://x/<script>", "http://user@x", "http://x:99999", "http://x\"y", "http://x?y"} {
		for _, c := range Builtin(Config{PortalPort: 12345}, origin) {
			if c.ID == "api" && !strings.Contains(c.Snippet, " http://localhost:12345/api/apps") {
				t.Errorf("origin %q: api snippet %q", origin, c.Snippet)
			}
		}
	}
}

// TestBuiltinHoldsNoSecret: whatever the environment holds, the cards are
// built from Config alone, which has no secret field.
func TestBuiltinHoldsNoSecret(t *testing.T) {
	for _, f := range reflect.VisibleFields(reflect.TypeOf(Config{})) {
		name := strings.ToLower(f.Name)
		if strings.Contains(name, "token") || strings.Contains(name, "password") || strings.Contains(name, "secret") {
			t.Errorf("Config has a secret-looking field %s", f.Name)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Default(), ""},
		{Config{File: "links.yaml"}, `file: "links.yaml": want an absolute path`},
		{Config{SSHPort: 70000}, "ssh_port: 70000: want 1-65535"},
		{Config{PortalPort: -1}, "portal_port: -1: want 1-65535"},
		{Config{DocsURL: "ftp://x"}, `docs_url: "ftp://x": want an http or https URL`},
		{Config{Username: "a\nb", SSHHost: "\x00"}, "username: contains control characters\nssh_host: contains control characters"},
	}
	for _, tt := range tests {
		err := tt.cfg.Check()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || err.Error() != tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := NewLoader(Config{File: "rel"}, nil); err == nil {
		t.Error("NewLoader accepted an invalid config")
	}
}

func TestLoaderOrderRereadAndLogOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "links.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("- label: First\n  url: https://first\n  position: before\n- label: Last\n  url: https://last\n- label: Bad\n")
	var logged []string
	l, err := NewLoader(Config{File: path, Inline: "Env|https://env,Broken"}, func(w string) { logged = append(logged, w) })
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1000, 0)
	l.now = func() time.Time { return clock }
	labels := func(cards []Card) string {
		var s []string
		for _, c := range cards {
			s = append(s, c.Label)
		}
		return strings.Join(s, ",")
	}
	cards, warns := l.Cards("http://localhost:1111")
	if got := labels(cards); got != "First,How to log in,SSH port forward,API access,Prometheus metrics,Documentation,Last,Env" {
		t.Fatalf("order: %s", got)
	}
	if len(warns) != 2 || !strings.Contains(warns[0], `entry 3 ("Bad"): url: missing`) || !strings.Contains(warns[1], `PORTAL_LINKS: entry 2 ("Broken")`) {
		t.Fatalf("warnings %q", warns)
	}
	if len(logged) != 2 {
		t.Fatalf("logged %q", logged)
	}
	// Unchanged: no re-read and nothing logged again, whatever the polling.
	for i := 0; i < 5; i++ {
		clock = clock.Add(2 * time.Second)
		l.Cards("http://localhost:1111")
	}
	if len(logged) != 2 {
		t.Fatalf("logged again: %q", logged)
	}
	// An edit is picked up at the next check, and only the new warnings
	// are logged (the moved "Bad" entry has a new line number).
	write("- label: Changed\n  url: https://changed\n- label: Bad\n- label: Worse\n  url: gopher://x\n")
	clock = clock.Add(2 * time.Second)
	cards, warns = l.Cards("")
	if !strings.Contains(labels(cards), "Changed") || strings.Contains(labels(cards), "First") {
		t.Fatalf("after edit: %s", labels(cards))
	}
	if len(warns) != 3 || len(logged) != 4 || !strings.Contains(logged[2], `links.yaml:3: entry 2 ("Bad")`) || !strings.Contains(logged[3], "gopher://x") {
		t.Fatalf("after edit: warnings %q, logged %q", warns, logged)
	}
	// Within statInterval the file is not even looked at.
	write("- label: Quick\n  url: https://quick\n")
	clock = clock.Add(statInterval / 2)
	if cards, _ = l.Cards(""); strings.Contains(labels(cards), "Quick") {
		t.Fatal("re-read within the stat interval")
	}
	clock = clock.Add(statInterval)
	if cards, _ = l.Cards(""); !strings.Contains(labels(cards), "Quick") {
		t.Fatalf("edit not picked up: %s", labels(cards))
	}
	// Removing the file removes its cards; a named file that is missing is a warning.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Second)
	cards, warns = l.Cards("")
	if strings.Contains(labels(cards), "Quick") || len(warns) != 2 || warns[0] != path+": no such file; file skipped" {
		t.Fatalf("after removal: %s %q", labels(cards), warns)
	}
}

func TestLoaderFileErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, maxFileBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		big: big + ": larger than 1048576 bytes; file skipped",
		dir: dir + ": not a regular file; file skipped",
	} {
		l, err := NewLoader(Config{File: path}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, warns := l.Cards(""); len(warns) != 1 || warns[0] != want {
			t.Errorf("%s: warnings %q, want %q", path, warns, want)
		}
	}
	// The default path missing is normal: no warning.
	if _, err := os.Stat(DefaultFile); err == nil {
		t.Skip(DefaultFile + " exists on this machine")
	}
	l, _ := NewLoader(Config{}, nil)
	if cards, warns := l.Cards(""); len(warns) != 0 || len(cards) != 5 {
		t.Errorf("default file missing: %d cards, warnings %q", len(cards), warns)
	}
}

// checkCard asserts what every card that reaches the page satisfies.
func checkCard(t *testing.T, c Card) {
	t.Helper()
	if c.Label == "" || checkURL(c.URL) != nil || !validIcon(c.Icon) || c.ButtonText == "" ||
		(c.Position != "before" && c.Position != "after") {
		t.Fatalf("invalid card reached the page: %+v", c)
	}
	if _, err := checkText(c.Label, maxLabel, true); err != nil {
		t.Fatalf("label %q: %v", c.Label, err)
	}
	if _, err := checkDescription(c.Description); err != nil {
		t.Fatalf("description %q: %v", c.Description, err)
	}
	if len(c.Links) > maxLinks {
		t.Fatalf("%d links", len(c.Links))
	}
	for _, l := range c.Links {
		if l.Label == "" || checkURL(l.URL) != nil {
			t.Fatalf("invalid link %+v", l)
		}
	}
}

// FuzzParseFile: any bytes give valid cards only, and every entry of the
// list is either a card or a warning that says it was skipped.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("- label: A\n  url: https://a\n  links:\n    - label: b\n      url: http://b\n"))
	f.Add([]byte("- label: A\n  url: ftp://a\n- {label: B, url: 'https://b', icon: zap, position: before}\n"))
	f.Add([]byte("label: x\n"))
	f.Add([]byte("- [1, 2]\n- null\n- label: &a x\n  url: *a\n"))
	f.Add([]byte("- label: \"\\u0000\"\n  url: https://x\n  description: \"a\\tb\\nc\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cards, warns := parseFile(data, "f.yaml")
		for _, c := range cards {
			if c.Source != SourceFile {
				t.Fatalf("source %q", c.Source)
			}
			checkCard(t, c)
		}
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.SequenceNode {
			if len(cards) != 0 {
				t.Fatalf("cards from a document that is not a list: %+v", cards)
			}
			return
		}
		entries := len(doc.Content[0].Content)
		skips := 0
		for _, w := range warns {
			if strings.HasSuffix(w, skipped) {
				skips++
			}
		}
		if entries <= maxCards && len(cards)+skips != entries {
			t.Fatalf("%d entries, %d cards, %d skipped: %q", entries, len(cards), skips, warns)
		}
	})
}

// FuzzParseInline: valid cards only, and every non-empty entry is a card
// or a skip warning.
func FuzzParseInline(f *testing.F) {
	f.Add("Docs|https://x|desc,Bad|ftp://y")
	f.Add("a|b|c|d,,|,x")
	f.Add("L|http://[::1]:80/p")
	f.Fuzz(func(t *testing.T, s string) {
		cards, warns := parseInline(s)
		for _, c := range cards {
			if c.Source != SourceEnv {
				t.Fatalf("source %q", c.Source)
			}
			checkCard(t, c)
		}
		entries := 0
		for _, item := range strings.Split(s, ",") {
			if strings.TrimSpace(item) != "" {
				entries++
			}
		}
		if entries <= maxCards && len(cards)+len(warns) != entries {
			t.Fatalf("%d entries, %d cards, %d warnings", entries, len(cards), len(warns))
		}
	})
}

// The Documentation card leads to this project's docs (issue 21), which
// is what its description promises, not to the host's generic site.
func TestDefaultDocsAreThisProjects(t *testing.T) {
	u := Default().DocsURL
	if u != ProjectDocsURL || !strings.HasSuffix(u, "/docs") || strings.Contains(u, "vast.ai") {
		t.Fatalf("default docs_url %q", u)
	}
}
