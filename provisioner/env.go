package provisioner

import (
	"fmt"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/redact"
)

// Env is a snapshot of the environment the run reads: the manifest's
// ${VAR}s, the PROVISIONING_* conventions, the PROVISIONER_* overrides,
// the token variables. Tests pass their own.
type Env map[string]string

// OSEnv is the process environment.
func OSEnv() Env { return Env(portalconfig.OSEnviron()) }

// Lookup is os.LookupEnv over the snapshot.
func (e Env) Lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

// Get is the value, "" when unset.
func (e Env) Get(k string) string { return e[k] }

// The environment conventions: PROVISIONING_* add to what is provisioned,
// PROVISIONER_* change how. Each name is the reference's.
const (
	EnvDownloads    = "PROVISIONING_DOWNLOADS"     // url|dest;…
	EnvGitRepos     = "PROVISIONING_GIT_REPOS"     // url|dest|ref;… (dest, ref optional)
	EnvApt          = "PROVISIONING_APT"           // pkg;…
	EnvPip          = "PROVISIONING_PIP"           // spec;… (one block, default venv)
	EnvConda        = "PROVISIONING_CONDA"         // spec;… (one block)
	EnvPostCommands = "PROVISIONING_POST_COMMANDS" // cmd;…
	EnvScript       = "PROVISIONING_SCRIPT"        // path or URL, the last phase
	EnvManifest     = "PROVISIONING_MANIFEST"      // path or URL of the manifest

	EnvRetryMax         = "PROVISIONER_RETRY_MAX"          // on_failure.max_retries
	EnvRetryDelay       = "PROVISIONER_RETRY_DELAY"        // on_failure.retry_delay
	EnvFailureAction    = "PROVISIONER_FAILURE_ACTION"     // on_failure.action
	EnvWebhookURL       = "PROVISIONER_WEBHOOK_URL"        // on_failure.webhook
	EnvWebhookOnSuccess = "PROVISIONER_WEBHOOK_ON_SUCCESS" // 1/true/yes
	EnvLogFile          = "PROVISIONER_LOG_FILE"           // settings.log_file
	EnvVenv             = "PROVISIONER_VENV"               // settings.venv
	EnvCondaEnv         = "PROVISIONER_CONDA_ENV"          // settings.conda_env
)

// ApplyOverrides applies the PROVISIONER_* variables to m, as the reference
// does after loading; a value that is not a number is ignored with a
// warning, which is returned.
func ApplyOverrides(m *Manifest, env Env) []string {
	var warns []string
	num := func(name string, dst *int) {
		v, ok := env.Lookup(name)
		if !ok {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			warns = append(warns, fmt.Sprintf("%s=%q is not a whole number, ignoring", name, clip(v, 40)))
			return
		}
		*dst = n
	}
	str := func(name string, dst *string) {
		if v, ok := env.Lookup(name); ok {
			*dst = v
		}
	}
	num(EnvRetryMax, &m.OnFailure.MaxRetries)
	num(EnvRetryDelay, &m.OnFailure.RetryDelay)
	str(EnvFailureAction, &m.OnFailure.Action)
	str(EnvWebhookURL, &m.OnFailure.Webhook)
	if v, ok := env.Lookup(EnvWebhookOnSuccess); ok {
		switch strings.ToLower(v) {
		case "1", "true", "yes":
			m.OnFailure.WebhookOnSuccess = true
		default:
			m.OnFailure.WebhookOnSuccess = false
		}
	}
	str(EnvLogFile, &m.Settings.LogFile)
	str(EnvVenv, &m.Settings.Venv)
	str(EnvCondaEnv, &m.Settings.CondaEnv)
	switch m.OnFailure.Action {
	case ActionContinue, ActionStop, ActionDestroy:
	default:
		warns = append(warns, fmt.Sprintf("unknown on_failure action %q, treated as continue", clip(m.OnFailure.Action, 40)))
		m.OnFailure.Action = ActionContinue
	}
	return warns
}

// splitEntries splits a convention value on ';', trimming each entry and
// dropping empty ones and comments ('#…').
func splitEntries(v string) []string {
	var out []string
	for _, raw := range strings.Split(v, ";") {
		raw = strings.TrimSpace(raw)
		if raw == "" || strings.HasPrefix(raw, "#") {
			continue
		}
		out = append(out, raw)
	}
	return out
}

// parsePairs reads "url|dest;…" (env_merge and PROVISIONING_DOWNLOADS).
// Entries without '|' are skipped with a warning; the warning masks URL
// credentials.
func parsePairs(v string) (out []Download, warns []string) {
	for _, raw := range splitEntries(v) {
		u, d, ok := strings.Cut(raw, "|")
		if !ok {
			warns = append(warns, "skipping an entry without '|': "+redact.URLs(raw))
			continue
		}
		u, d = strings.TrimSpace(u), strings.TrimSpace(d)
		if u != "" && d != "" {
			out = append(out, Download{URL: u, Dest: d})
		}
	}
	return out, warns
}

// repoDest is where a repository given without dest goes:
// ${WORKSPACE:-/workspace}/NAME, NAME from the URL's path without ".git".
func repoDest(rawURL string, env Env) string {
	p := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		p = u.Path
	}
	name := strings.TrimSuffix(path.Base(strings.TrimRight(p, "/")), ".git")
	if name == "" || name == "." || name == "/" {
		return ""
	}
	ws, ok := env.Lookup("WORKSPACE")
	if !ok {
		ws = "/workspace"
	}
	return ws + "/" + name
}

// ApplyConventions appends what the PROVISIONING_* variables name to m, as
// the reference does after resolving conditionals and env_merge.
func ApplyConventions(m *Manifest, env Env) []string {
	var warns []string
	if v := env.Get(EnvDownloads); v != "" {
		d, w := parsePairs(v)
		m.Downloads = append(m.Downloads, d...)
		warns = append(warns, w...)
	}
	if v := env.Get(EnvGitRepos); v != "" {
		for _, raw := range splitEntries(v) {
			parts := strings.Split(raw, "|")
			g := GitRepo{URL: strings.TrimSpace(parts[0]), Recursive: true}
			if len(parts) > 1 {
				g.Dest = strings.TrimSpace(parts[1])
			}
			if len(parts) > 2 {
				g.Ref = strings.TrimSpace(parts[2])
			}
			if g.URL == "" {
				continue
			}
			if g.Dest == "" {
				g.Dest = repoDest(g.URL, env)
			}
			m.GitRepos = append(m.GitRepos, g)
		}
	}
	if v := splitEntries(env.Get(EnvApt)); len(v) > 0 {
		m.AptPackages = append(m.AptPackages, v...)
	}
	if v := splitEntries(env.Get(EnvPip)); len(v) > 0 {
		m.PipPackages = append(m.PipPackages, PipBlock{Tool: "uv", Packages: v})
	}
	if v := splitEntries(env.Get(EnvConda)); len(v) > 0 {
		m.CondaPackages = append(m.CondaPackages, CondaBlock{Packages: v})
	}
	if v := splitEntries(env.Get(EnvPostCommands)); len(v) > 0 {
		m.PostCommands = append(m.PostCommands, v...)
	}
	return warns
}

// ApplyEnvMerge appends the downloads named by env_merge's variables.
func ApplyEnvMerge(m *Manifest, env Env) []string {
	var warns []string
	for _, e := range m.EnvMerge {
		v := env.Get(e.Var)
		if v == "" {
			continue
		}
		if e.Target != "downloads" {
			warns = append(warns, fmt.Sprintf("env_merge target %q not supported (only \"downloads\")", e.Target))
			continue
		}
		d, w := parsePairs(v)
		m.Downloads = append(m.Downloads, d...)
		warns = append(warns, w...)
	}
	return warns
}

// ResolveConditionals moves each conditional's chosen list into Downloads.
func ResolveConditionals(m *Manifest, hfValid, civitaiValid bool) []string {
	var warns []string
	for _, c := range m.ConditionalDownloads {
		var ok bool
		switch c.When {
		case "hf_token_valid":
			ok = hfValid
		case "civitai_token_valid":
			ok = civitaiValid
		default:
			warns = append(warns, fmt.Sprintf("unknown condition %q, skipping", c.When))
			continue
		}
		if ok {
			m.Downloads = append(m.Downloads, c.Downloads...)
		} else {
			m.Downloads = append(m.Downloads, c.ElseDownloads...)
		}
	}
	m.ConditionalDownloads = nil
	return warns
}

// provisioningEnv is every PROVISIONING_* variable, sorted: part of the
// extensions' hash, since extensions read such variables.
func provisioningEnv(env Env) []string {
	var out []string
	for k, v := range env {
		if strings.HasPrefix(k, "PROVISIONING_") {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}
