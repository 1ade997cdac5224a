// Package provisioner runs a provisioning manifest in the reference image's
// format (version 1: settings, auth, on_failure, write_files, apt, git, pip,
// conda, downloads, services, post_commands, PROVISIONING_SCRIPT), phase by
// phase, each phase keyed by a hash of its content so that a rerun skips
// what is done. Parsing, expansion and planning are pure; running commands
// goes through the Runner interface and downloads through package download,
// so tests drive every phase against local repositories, indexes and
// servers. docs/provisioning.md is the manual.
package provisioner

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/instanceportal/portal/download"
)

// Manifest is a parsed manifest, version 1. Field names and defaults are
// the reference's (its schema.py). In the entries' types, a `yaml` tag names
// the key a plain field is read from, with `min` the least whole number it
// takes; a key that needs a check or a nested reader has its own reader in
// the parser (see parser.fields).
type Manifest struct {
	Version              int
	Settings             Settings
	Auth                 Auth
	OnFailure            OnFailure
	Extensions           []Extension
	WriteFiles           []FileWrite
	AptPackages          []string
	GitRepos             []GitRepo
	PipPackages          []PipBlock
	CondaPackages        []CondaBlock
	Downloads            []Download
	ConditionalDownloads []ConditionalDownload
	// EnvMerge maps an environment variable holding "url|dest;…" to its
	// target, which must be "downloads". Sorted by variable name.
	EnvMerge       []EnvMerge
	Services       []Service
	WriteFilesLate []FileWrite
	PostCommands   []string
}

// Settings is the manifest's `settings` section.
type Settings struct {
	// Venv is the default target of pip blocks. Default: /venv/main
	Venv string
	// CondaEnv is the default target of conda blocks. Default: /venv/main
	CondaEnv string
	// LogFile receives the run's log besides stdout.
	// Default: /var/log/portal/provisioning.log
	LogFile string
	// HFDownloads and WgetDownloads bound the two download pools.
	// Defaults: 3 and 5.
	HFDownloads, WgetDownloads int
	// Download retries: MaxAttempts tries, the first retry after
	// InitialDelay seconds, each later one BackoffMultiplier times longer.
	// Defaults: 5, 2, 2.
	MaxAttempts, InitialDelay, BackoffMultiplier int
}

// Auth names the environment variables holding the hubs' tokens. The
// tokens themselves never appear in a manifest.
type Auth struct {
	// HFTokenEnv default: HF_TOKEN. CivitAITokenEnv default: CIVITAI_TOKEN.
	HFTokenEnv, CivitAITokenEnv string
}

// The on_failure actions.
const (
	ActionContinue = "continue"
	ActionStop     = "stop"
	ActionDestroy  = "destroy"
)

// OnFailure is what happens when a run fails: the whole run is retried
// MaxRetries times in all, RetryDelay seconds apart, then Action runs and
// Webhook (if any) hears about it.
type OnFailure struct {
	// Action: continue, stop or destroy. Default: continue
	Action string
	// MaxRetries is the number of attempts. Default: 3
	MaxRetries int `yaml:"max_retries"`
	// RetryDelay in seconds. Default: 30
	RetryDelay int `yaml:"retry_delay"`
	// Webhook receives a JSON POST after the last failure (and after a
	// success when WebhookOnSuccess).
	Webhook          string `yaml:"webhook"`
	WebhookOnSuccess bool   `yaml:"webhook_on_success"`
}

// Extension is a discovery step run before any phase; it may only add
// entries to the manifest's lists.
type Extension struct {
	Module  string `yaml:"module"`
	Config  map[string]any
	Enabled bool `yaml:"enabled"`
	Line    int
}

// FileWrite is one file of write_files or write_files_late.
type FileWrite struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Permissions string // octal text. Default: 0644
	Owner       string `yaml:"owner"` // user or user:group; empty keeps the writer's
}

// GitRepo is one git_repos entry.
type GitRepo struct {
	URL          string   `yaml:"url"`
	Dest         string   `yaml:"dest"`
	Ref          string   `yaml:"ref"`
	Recursive    bool     `yaml:"recursive"` // default true
	PullIfExists bool     `yaml:"pull_if_exists"`
	PostCommands []string `yaml:"post_commands"`
}

// PipBlock is one pip_packages entry.
type PipBlock struct {
	Tool         string   // "uv" (default) or "pip"
	Packages     []string `yaml:"packages"`
	Args         string   `yaml:"args"`
	Requirements []string `yaml:"requirements"`
	Venv         string   `yaml:"venv"` // "" means settings.venv; "system" the system python
	Python       string   `yaml:"python"`
}

// CondaBlock is one conda_packages entry.
type CondaBlock struct {
	Packages []string `yaml:"packages"`
	Channels []string `yaml:"channels"`
	Args     string   `yaml:"args"`
	Env      string   `yaml:"env"` // "" means settings.conda_env
	Python   string   `yaml:"python"`
}

// Download is one downloads entry. An empty Dest means the Hugging Face
// cache; a Dest ending in "/" is a directory whose file name the server
// decides.
type Download struct {
	URL  string `yaml:"url"`
	Dest string `yaml:"dest"`
}

// ConditionalDownload picks Downloads or ElseDownloads by a token check.
type ConditionalDownload struct {
	When          string `yaml:"when"` // hf_token_valid or civitai_token_valid
	Downloads     []Download
	ElseDownloads []Download
}

// EnvMerge is one env_merge entry.
type EnvMerge struct {
	Var, Target string
}

// Service is one services entry: a supervisord program, its wrapper, and,
// when InternalPort is set (our addition), its portal.yaml entry.
type Service struct {
	Name                string
	PortalSearchTerm    string   `yaml:"portal_search_term"`
	SkipOnServerless    bool     `yaml:"skip_on_serverless"` // default true
	Venv                string   `yaml:"venv"`               // default /venv/main; "system" activates none
	Workdir             string   `yaml:"workdir"`
	Command             string   `yaml:"command"`
	PreCommands         []string `yaml:"pre_commands"`
	WaitForProvisioning bool     `yaml:"wait_for_provisioning"` // default true
	// Environment is exported by the wrapper, in the manifest's order.
	Environment []EnvVar
	// ExternalPort, InternalPort and OpenPath (ours, optional) add the app
	// to portal.yaml under PortalSearchTerm (else Name): the portal then
	// serves ExternalPort and proxies it to InternalPort.
	ExternalPort int    `yaml:"external_port" min:"1"`
	InternalPort int    `yaml:"internal_port" min:"1"`
	OpenPath     string `yaml:"open_path"`
}

// EnvVar is one exported variable.
type EnvVar struct{ Name, Value string }

// Defaults as the reference's schema.
const (
	DefaultVenv    = "/venv/main"
	DefaultLogFile = "/var/log/portal/provisioning.log"
)

// NewManifest is an empty manifest with every default, what script-only
// mode (no manifest, only PROVISIONING_SCRIPT) runs.
func NewManifest() *Manifest {
	return &Manifest{
		Version: 1,
		Settings: Settings{Venv: DefaultVenv, CondaEnv: DefaultVenv, LogFile: DefaultLogFile,
			HFDownloads: 3, WgetDownloads: 5, MaxAttempts: 5, InitialDelay: 2, BackoffMultiplier: 2},
		Auth:      Auth{HFTokenEnv: "HF_TOKEN", CivitAITokenEnv: "CIVITAI_TOKEN"},
		OnFailure: OnFailure{Action: ActionContinue, MaxRetries: 3, RetryDelay: 30},
	}
}

// FieldError is a manifest refused: the file, the line, and the field's
// path (section.field, with list indexes).
type FieldError struct {
	File string
	Line int
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Path, e.Msg)
}

// Warning is something the parser ignored (an unknown key), with where.
type Warning struct {
	File string
	Line int
	Path string
	Msg  string
}

func (w Warning) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", w.File, w.Line, w.Path, w.Msg)
}

// yamlLine is yaml.v3's "line N: message".
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// maxErrors bounds how many faults one refusal lists.
const maxErrors = 20

// Parse reads a manifest. Every string value has its ${VAR} expressions
// expanded from lookup first (Expand), as the reference does before it
// looks at the content. A manifest with faults is refused with all of them
// (up to 20), each naming file:line and the field; unknown keys are
// warnings, as on the reference, which ignores them.
func Parse(body []byte, file string, lookup func(string) (string, bool)) (*Manifest, []Warning, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			return nil, nil, fmt.Errorf("%s:%s: %s", file, m[1], m[2])
		}
		return nil, nil, fmt.Errorf("%s: %s", file, msg)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		return nil, nil, fmt.Errorf("%s: empty manifest", file)
	}
	root := doc.Content[0]
	expandNode(root, lookup)
	p := &parser{file: file}
	m := NewManifest()
	p.manifest(root, m)
	if len(p.errs) > 0 {
		return nil, p.warns, errors.Join(p.errs...)
	}
	return m, p.warns, nil
}

type parser struct {
	file  string
	errs  []error
	warns []Warning
}

func (p *parser) fail(n *yaml.Node, path, format string, args ...any) {
	if len(p.errs) >= maxErrors {
		return
	}
	p.errs = append(p.errs, &FieldError{File: p.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warn(n *yaml.Node, path, format string, args ...any) {
	p.warns = append(p.warns, Warning{File: p.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", clip(n.Value, 40))
}

func clip(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// mapping walks a mapping's keys, calling field for each known key and
// warning about the others. A null node is an empty mapping.
func (p *parser) mapping(n *yaml.Node, path string, fields map[string]func(*yaml.Node, string)) {
	if isNull(n) {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		sub := key
		if path != "" {
			sub = path + "." + key
		}
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			p.fail(k, sub, "merge keys (<<) are not supported")
			continue
		}
		if seen[key] {
			p.fail(k, sub, "given twice")
			continue
		}
		seen[key] = true
		f, ok := fields[key]
		if !ok {
			p.warn(k, sub, "unknown key, ignored (typo?)")
			continue
		}
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		f(v, sub)
	}
}

func (p *parser) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode {
			p.fail(n, path, "want a string, got %s", kindName(n))
			return
		}
		*dst = n.Value
	}
}

func (p *parser) integer(dst *int, min int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if isNull(n) {
			return
		}
		v, err := strconv.Atoi(strings.TrimSpace(n.Value))
		if n.Kind != yaml.ScalarNode || err != nil {
			p.fail(n, path, "want a whole number, got %s", kindName(n))
			return
		}
		if v < min {
			p.fail(n, path, "want at least %d, got %d", min, v)
			return
		}
		*dst = v
	}
}

func (p *parser) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if isNull(n) {
			return
		}
		if n.Kind == yaml.ScalarNode {
			switch strings.ToLower(n.Value) {
			case "true", "yes", "on", "1":
				*dst = true
				return
			case "false", "no", "off", "0":
				*dst = false
				return
			}
		}
		p.fail(n, path, "want true or false, got %s", kindName(n))
	}
}

func (p *parser) strList(dst *[]string) func(*yaml.Node, string) {
	each := p.list(false, func(c *yaml.Node, path string) {
		if c.Kind != yaml.ScalarNode || isNull(c) {
			p.fail(c, path, "want a string, got %s", kindName(c))
			return
		}
		*dst = append(*dst, c.Value)
	})
	return func(n *yaml.Node, path string) {
		if !isNull(n) && n.Kind != yaml.SequenceNode {
			p.fail(n, path, "want a list of strings, got %s", kindName(n))
			return
		}
		each(n, path)
	}
}

// fields reads a mapping into the struct dst points to: each field tagged
// `yaml:"key"` by its type (string, bool, []string, or int at least its
// `min` tag), and each key of special by its own reader (a check, a nested
// section, a list of entries). A tagged field of another type is a
// programming error.
func (p *parser) fields(n *yaml.Node, path string, dst any, special map[string]func(*yaml.Node, string)) {
	v := reflect.ValueOf(dst).Elem()
	t := v.Type()
	readers := make(map[string]func(*yaml.Node, string), t.NumField()+len(special))
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("yaml")
		if key == "" {
			continue
		}
		switch f := v.Field(i).Addr().Interface().(type) {
		case *string:
			readers[key] = p.str(f)
		case *bool:
			readers[key] = p.boolean(f)
		case *[]string:
			readers[key] = p.strList(f)
		case *int:
			min, _ := strconv.Atoi(t.Field(i).Tag.Get("min"))
			readers[key] = p.integer(f, min)
		default:
			panic(fmt.Sprintf("provisioner: %s.%s: no reader for %T", t.Name(), t.Field(i).Name, f))
		}
	}
	maps.Copy(readers, special)
	p.mapping(n, path, readers)
}

// listOf reads a list (or, when single, a lone mapping too) whose entries
// item reads, appending them to dst.
func listOf[T any](p *parser, single bool, dst *[]T, item func(*yaml.Node, string) T) func(*yaml.Node, string) {
	return p.list(single, func(n *yaml.Node, path string) { *dst = append(*dst, item(n, path)) })
}

// list calls item for each element of a sequence; a null is empty. When
// single is true a lone mapping counts as a list of one (the reference's
// backward compatibility for pip_packages and conda_packages).
func (p *parser) list(single bool, item func(n *yaml.Node, path string)) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if isNull(n) {
			return
		}
		if single && n.Kind == yaml.MappingNode {
			item(n, path+"[0]")
			return
		}
		if n.Kind != yaml.SequenceNode {
			p.fail(n, path, "want a list, got %s", kindName(n))
			return
		}
		for i, c := range n.Content {
			if c.Kind == yaml.AliasNode {
				c = c.Alias
			}
			item(c, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

func (p *parser) manifest(root *yaml.Node, m *Manifest) {
	if root.Kind != yaml.MappingNode {
		p.fail(root, "", "a manifest is a mapping (version: 1, …), got %s", kindName(root))
		return
	}
	versionSeen := false
	p.mapping(root, "", map[string]func(*yaml.Node, string){
		"version": func(n *yaml.Node, path string) {
			versionSeen = true
			if n.Kind != yaml.ScalarNode || n.Value != "1" || n.Tag == "!!str" {
				p.fail(n, path, "unsupported manifest version %s (expected 1)", kindName(n))
			}
		},
		"settings":              func(n *yaml.Node, path string) { p.settings(n, path, &m.Settings) },
		"auth":                  func(n *yaml.Node, path string) { p.auth(n, path, &m.Auth) },
		"on_failure":            func(n *yaml.Node, path string) { p.onFailure(n, path, &m.OnFailure) },
		"extensions":            listOf(p, false, &m.Extensions, p.extension),
		"write_files":           listOf(p, false, &m.WriteFiles, p.fileWrite),
		"write_files_late":      listOf(p, false, &m.WriteFilesLate, p.fileWrite),
		"apt_packages":          p.strList(&m.AptPackages),
		"git_repos":             listOf(p, false, &m.GitRepos, p.gitRepo),
		"pip_packages":          listOf(p, true, &m.PipPackages, p.pipBlock),
		"conda_packages":        listOf(p, true, &m.CondaPackages, p.condaBlock),
		"downloads":             listOf(p, false, &m.Downloads, p.download),
		"conditional_downloads": listOf(p, false, &m.ConditionalDownloads, p.conditional),
		"env_merge":             func(n *yaml.Node, path string) { m.EnvMerge = p.envMerge(n, path) },
		"services":              listOf(p, false, &m.Services, p.service),
		"post_commands":         p.strList(&m.PostCommands),
	})
	if !versionSeen && len(p.errs) == 0 {
		p.fail(root, "version", "missing: a manifest starts with `version: 1`")
	}
}

func (p *parser) settings(n *yaml.Node, path string, s *Settings) {
	p.mapping(n, path, map[string]func(*yaml.Node, string){
		"venv":      p.str(&s.Venv),
		"conda_env": p.str(&s.CondaEnv),
		"log_file":  p.str(&s.LogFile),
		"concurrency": func(n *yaml.Node, path string) {
			p.mapping(n, path, map[string]func(*yaml.Node, string){
				"hf_downloads":   p.integer(&s.HFDownloads, 1),
				"wget_downloads": p.integer(&s.WgetDownloads, 1),
			})
		},
		"retry": func(n *yaml.Node, path string) {
			p.mapping(n, path, map[string]func(*yaml.Node, string){
				"max_attempts":       p.integer(&s.MaxAttempts, 1),
				"initial_delay":      p.integer(&s.InitialDelay, 0),
				"backoff_multiplier": p.integer(&s.BackoffMultiplier, 1),
			})
		},
	})
}

func (p *parser) auth(n *yaml.Node, path string, a *Auth) {
	provider := func(dst *string) func(*yaml.Node, string) {
		return func(n *yaml.Node, path string) {
			p.mapping(n, path, map[string]func(*yaml.Node, string){"token_env": p.str(dst)})
		}
	}
	p.mapping(n, path, map[string]func(*yaml.Node, string){
		"huggingface": provider(&a.HFTokenEnv),
		"civitai":     provider(&a.CivitAITokenEnv),
	})
}

func (p *parser) onFailure(n *yaml.Node, path string, o *OnFailure) {
	p.fields(n, path, o, map[string]func(*yaml.Node, string){
		"action": func(n *yaml.Node, path string) {
			p.str(&o.Action)(n, path)
			switch o.Action {
			case ActionContinue, ActionStop, ActionDestroy:
			default:
				p.fail(n, path, "%q: want continue, destroy or stop", clip(o.Action, 40))
			}
		},
	})
}

func (p *parser) extension(n *yaml.Node, path string) Extension {
	e := Extension{Enabled: true, Line: n.Line}
	p.fields(n, path, &e, map[string]func(*yaml.Node, string){
		"config": func(n *yaml.Node, path string) {
			if isNull(n) {
				return
			}
			if n.Kind != yaml.MappingNode {
				p.fail(n, path, "want a mapping, got %s", kindName(n))
				return
			}
			if err := n.Decode(&e.Config); err != nil {
				p.fail(n, path, "%v", err)
			}
		},
	})
	return e
}

func (p *parser) fileWrite(n *yaml.Node, path string) FileWrite {
	f := FileWrite{Permissions: "0644"}
	p.fields(n, path, &f, map[string]func(*yaml.Node, string){
		"permissions": func(n *yaml.Node, path string) {
			// An unquoted 0755 is a YAML number; its text is what was meant.
			p.str(&f.Permissions)(n, path)
			if _, err := parseMode(f.Permissions); err != nil {
				p.fail(n, path, "%v", err)
			}
		},
	})
	if f.Path == "" && n.Kind == yaml.MappingNode {
		p.fail(n, path+".path", "missing: each file needs a path")
	} else if f.Path != "" && !filepath.IsAbs(f.Path) {
		p.fail(n, path+".path", "%q: want an absolute path", clip(f.Path, 80))
	}
	return f
}

// parseMode reads octal permission text such as "0644", "755" or "0o755".
func parseMode(s string) (uint32, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0o"), "0O")
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("%q: want octal permissions such as \"0644\"", clip(s, 20))
	}
	return uint32(v), nil
}

func (p *parser) gitRepo(n *yaml.Node, path string) GitRepo {
	g := GitRepo{Recursive: true}
	p.fields(n, path, &g, nil)
	if g.URL == "" && n.Kind == yaml.MappingNode {
		p.fail(n, path+".url", "missing: each repository needs a url")
	}
	return g
}

func (p *parser) pipBlock(n *yaml.Node, path string) PipBlock {
	b := PipBlock{Tool: "uv"}
	p.fields(n, path, &b, map[string]func(*yaml.Node, string){
		"tool": func(n *yaml.Node, path string) {
			p.str(&b.Tool)(n, path)
			if b.Tool != "uv" && b.Tool != "pip" {
				p.fail(n, path, "%q: want uv or pip", clip(b.Tool, 40))
			}
		},
	})
	return b
}

func (p *parser) condaBlock(n *yaml.Node, path string) CondaBlock {
	var b CondaBlock
	p.fields(n, path, &b, nil)
	return b
}

func (p *parser) download(n *yaml.Node, path string) Download {
	var d Download
	p.fields(n, path, &d, nil)
	if d.URL == "" && n.Kind == yaml.MappingNode {
		p.fail(n, path+".url", "missing: each download needs a url")
	} else if d.URL != "" {
		if err := download.Validate(download.Spec{URL: d.URL, Dest: d.Dest}); err != nil {
			p.fail(n, path, "%v", err)
		}
	}
	return d
}

func (p *parser) conditional(n *yaml.Node, path string) ConditionalDownload {
	var c ConditionalDownload
	p.fields(n, path, &c, map[string]func(*yaml.Node, string){
		"downloads":      listOf(p, false, &c.Downloads, p.download),
		"else_downloads": listOf(p, false, &c.ElseDownloads, p.download),
	})
	return c
}

func (p *parser) envMerge(n *yaml.Node, path string) []EnvMerge {
	var out []EnvMerge
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "want a mapping of VARIABLE: downloads, got %s", kindName(n))
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			p.fail(v, path+"."+k.Value, "want a target name (downloads), got %s", kindName(v))
			continue
		}
		out = append(out, EnvMerge{Var: k.Value, Target: v.Value})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Var < out[j].Var })
	return out
}

func (p *parser) service(n *yaml.Node, path string) Service {
	s := Service{SkipOnServerless: true, Venv: DefaultVenv, WaitForProvisioning: true}
	p.fields(n, path, &s, map[string]func(*yaml.Node, string){
		"name": func(n *yaml.Node, path string) {
			p.str(&s.Name)(n, path)
			if !safeName(s.Name) {
				p.fail(n, path, "%q: want letters, digits, '-' and '_' only", clip(s.Name, 40))
			}
		},
		"environment": func(n *yaml.Node, path string) {
			if isNull(n) {
				return
			}
			if n.Kind != yaml.MappingNode {
				p.fail(n, path, "want a mapping of NAME: value, got %s", kindName(n))
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if !safeEnvName(k.Value) {
					p.fail(k, path+"."+k.Value, "not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
					continue
				}
				if v.Kind != yaml.ScalarNode {
					p.fail(v, path+"."+k.Value, "want a string, got %s", kindName(v))
					continue
				}
				val := v.Value
				if isNull(v) {
					val = ""
				}
				s.Environment = append(s.Environment, EnvVar{k.Value, val})
			}
		},
	})
	if n.Kind == yaml.MappingNode {
		if s.Name == "" {
			p.fail(n, path+".name", "missing: each service needs a name")
		}
		if s.Command == "" {
			p.fail(n, path+".command", "missing: each service needs a command")
		}
		if (s.ExternalPort == 0) != (s.InternalPort == 0) {
			p.fail(n, path, "external_port and internal_port go together")
		}
		if s.ExternalPort > 65535 || s.InternalPort > 65535 {
			p.fail(n, path, "ports are at most 65535")
		}
	}
	return s
}

func safeName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func safeEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
