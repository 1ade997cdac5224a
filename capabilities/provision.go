package capabilities

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/redact"
)

// ProvisionRequest is the body of POST /capabilities/provision (the
// reference's ProvisionRequest): one of a manifest URL, an inline
// manifest, or simple lists.
type ProvisionRequest struct {
	// ManifestURL is an http(s) URL of a provisioning manifest.
	ManifestURL string `json:"manifest_url,omitempty"`
	// InlineYAML is a manifest's text.
	InlineYAML string `json:"inline_yaml,omitempty"`
	// Pip lists packages to install into /venv/main.
	Pip []string `json:"pip,omitempty"`
	// GitRepos lists repositories to clone: "url" or "url|dest|ref".
	GitRepos []string `json:"git_repos,omitempty"`
	// Downloads lists files to fetch: "url" or "url|dest".
	Downloads []string `json:"downloads,omitempty"`
}

// Bounds on a provision request.
const (
	// MaxProvisionBody bounds the request body.
	MaxProvisionBody = 1 << 20
	// maxListItems bounds each simple list.
	maxListItems = 256
	// maxItemLen bounds one list item or the URL.
	maxItemLen = 4096
	// keepRequests is how many request manifests are kept in the state dir.
	keepRequests = 10
)

// ErrBusy is returned when a provisioning run is already under way.
var ErrBusy = errors.New("a provisioning run is already in progress")

// DecodeProvisionRequest reads and checks a request body. Errors name the
// field at fault.
func DecodeProvisionRequest(r io.Reader) (ProvisionRequest, error) {
	var req ProvisionRequest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("body: want a JSON object with one of manifest_url, inline_yaml, pip, git_repos, downloads: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, errors.New("body: want one JSON object")
	}
	return req, req.Validate()
}

// Validate checks the request: exactly one form, each item sane.
func (r ProvisionRequest) Validate() error {
	forms := 0
	if r.ManifestURL != "" {
		forms++
	}
	if r.InlineYAML != "" {
		forms++
	}
	if len(r.Pip)+len(r.GitRepos)+len(r.Downloads) > 0 {
		forms++
	}
	switch {
	case forms == 0:
		return errors.New("give one of: manifest_url, inline_yaml, pip, git_repos, downloads")
	case forms > 1:
		return errors.New("give one of manifest_url, inline_yaml, or the lists (pip, git_repos, downloads), not several")
	}
	if r.ManifestURL != "" {
		return checkURL("manifest_url", r.ManifestURL)
	}
	if r.InlineYAML != "" {
		var doc any
		if err := yaml.Unmarshal([]byte(r.InlineYAML), &doc); err != nil {
			return fmt.Errorf("inline_yaml: not YAML: %v", err)
		}
		if _, ok := doc.(map[string]any); !ok {
			return fmt.Errorf("inline_yaml: want a mapping (a manifest starts with `version: 1`), got %s", kindOf(doc))
		}
		return nil
	}
	for name, list := range map[string][]string{"pip": r.Pip, "git_repos": r.GitRepos, "downloads": r.Downloads} {
		if len(list) > maxListItems {
			return fmt.Errorf("%s: %d items, at most %d", name, len(list), maxListItems)
		}
		for i, item := range list {
			if err := checkItem(name, i, item); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkItem checks one list item.
func checkItem(list string, i int, item string) error {
	field := fmt.Sprintf("%s[%d]", list, i)
	switch {
	case strings.TrimSpace(item) == "":
		return fmt.Errorf("%s: empty", field)
	case len(item) > maxItemLen:
		return fmt.Errorf("%s: longer than %d bytes", field, maxItemLen)
	case strings.ContainsAny(item, "\n\r\x00"):
		return fmt.Errorf("%s: holds a line break or NUL", field)
	}
	switch list {
	case "pip":
		if strings.HasPrefix(strings.TrimSpace(item), "-") {
			return fmt.Errorf("%s: %q: options are not allowed, only package requirements", field, clip(item, 60))
		}
	case "git_repos", "downloads":
		u, _, _ := strings.Cut(item, "|")
		if err := checkURL(field, strings.TrimSpace(u)); err != nil {
			return err
		}
	}
	return nil
}

// checkURL accepts an absolute http(s) URL.
func checkURL(field, raw string) error {
	if len(raw) > maxItemLen {
		return fmt.Errorf("%s: longer than %d bytes", field, maxItemLen)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q: want an http:// or https:// URL", field, redact.URLs(clip(raw, 200)))
	}
	return nil
}

// ManifestYAML is the manifest a request stands for, in the provisioner's
// format (the reference's). A manifest_url request has none: the URL is
// handed to the provisioner as it is.
func (r ProvisionRequest) ManifestYAML() ([]byte, error) {
	if r.InlineYAML != "" {
		return []byte(r.InlineYAML), nil
	}
	type entry struct {
		URL  string `yaml:"url"`
		Dest string `yaml:"dest,omitempty"`
		Ref  string `yaml:"ref,omitempty"`
	}
	type pipBlock struct {
		Packages []string `yaml:"packages"`
	}
	var m struct {
		Version     int        `yaml:"version"`
		PipPackages []pipBlock `yaml:"pip_packages,omitempty"`
		GitRepos    []entry    `yaml:"git_repos,omitempty"`
		Downloads   []entry    `yaml:"downloads,omitempty"`
	}
	m.Version = 1
	if len(r.Pip) > 0 {
		pkgs := make([]string, len(r.Pip))
		for i, p := range r.Pip {
			pkgs[i] = strings.TrimSpace(p)
		}
		m.PipPackages = []pipBlock{{Packages: pkgs}}
	}
	split := func(s string) entry {
		parts := strings.SplitN(s, "|", 3)
		e := entry{URL: strings.TrimSpace(parts[0])}
		if len(parts) > 1 {
			e.Dest = strings.TrimSpace(parts[1])
		}
		if len(parts) > 2 {
			e.Ref = strings.TrimSpace(parts[2])
		}
		return e
	}
	for _, g := range r.GitRepos {
		m.GitRepos = append(m.GitRepos, split(g))
	}
	for _, d := range r.Downloads {
		e := split(d)
		e.Ref = ""
		m.Downloads = append(m.Downloads, e)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// Launcher starts `<binary> portal provision <manifest>` in the
// background, one run at a time.
type Launcher struct {
	// Executable is this binary (os.Executable when empty).
	Executable string
	// StateDir is the provisioner's state directory (provstatus).
	StateDir string
	// LockFile exists while the entrypoint provisions (/.provisioning).
	LockFile string
	// Env is the child's environment (nil: this process's).
	Env []string

	mu      sync.Mutex
	running bool
}

// Started says what was launched.
type Started struct {
	// Manifest is the file written (or the URL given, masked).
	Manifest string
	PID      int
}

// Busy reports why a new run may not start now, or "" when it may.
func (l *Launcher) Busy() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busyLocked()
}

func (l *Launcher) busyLocked() string {
	if l.running {
		return "a provisioning run started from the portal is still running"
	}
	if st, err := provstatus.Read(provstatus.Path(l.StateDir)); err == nil && st.State == provstatus.Running {
		return "a provisioning run is in progress (" + ProgressPath + ")"
	}
	if l.LockFile != "" {
		if _, err := os.Stat(l.LockFile); err == nil {
			return "the boot's provisioning is in progress (" + l.LockFile + " exists)"
		}
	}
	return ""
}

// Start writes the request's manifest under StateDir/requests and starts
// the provisioner on it, detached in a session of its own, its output
// discarded (it writes provisioning.log and the progress itself). It
// returns ErrBusy while another run is in progress.
func (l *Launcher) Start(req ProvisionRequest) (Started, error) {
	if err := req.Validate(); err != nil {
		return Started{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if why := l.busyLocked(); why != "" {
		return Started{}, fmt.Errorf("%w: %s", ErrBusy, why)
	}
	arg, shown := req.ManifestURL, redact.URLs(req.ManifestURL)
	if arg == "" {
		body, err := req.ManifestYAML()
		if err != nil {
			return Started{}, err
		}
		path, err := l.writeRequest(body)
		if err != nil {
			return Started{}, fmt.Errorf("writing the manifest: %w", err)
		}
		arg, shown = path, path
	}
	exe := l.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return Started{}, fmt.Errorf("finding this binary: %w", err)
		}
	}
	// A URL goes through the environment (PROVISIONING_MANIFEST), not the
	// command line, which every local user can read in the process list.
	var cmd *exec.Cmd
	if req.ManifestURL != "" {
		cmd = exec.Command(exe, "portal", "provision")
		cmd.Env = append(append([]string(nil), l.Env...), "PROVISIONING_MANIFEST="+req.ManifestURL)
	} else {
		cmd = exec.Command(exe, "portal", "provision", arg)
		cmd.Env = l.Env
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Stdin, stdout and stderr stay nil: /dev/null.
	if err := cmd.Start(); err != nil {
		return Started{}, fmt.Errorf("starting the provisioner: %w", err)
	}
	l.running = true
	go func() {
		_ = cmd.Wait() // reap it; its outcome is in its progress file
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
	}()
	return Started{Manifest: shown, PID: cmd.Process.Pid}, nil
}

// writeRequest stores body as a new file in the requests directory
// (private: a manifest may name credentials), and removes the oldest
// files beyond keepRequests.
func (l *Launcher) writeRequest(body []byte) (string, error) {
	dir := filepath.Join(l.stateDir(), provstatus.RequestsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	// The time to the nanosecond first: names sort in creation order.
	name := filepath.Join(dir, fmt.Sprintf("provision-%s-%s.yaml", time.Now().UTC().Format("20060102T150405.000000000Z"), hex.EncodeToString(rnd[:])))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "provision-*.yaml"))
	sort.Strings(old)
	for _, f := range old[:max(0, len(old)-keepRequests)] {
		if f != name {
			os.Remove(f)
		}
	}
	return name, nil
}

func (l *Launcher) stateDir() string {
	if l.StateDir == "" {
		return provstatus.DefaultStateDir
	}
	return l.StateDir
}
