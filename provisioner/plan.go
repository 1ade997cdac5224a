package provisioner

import (
	"encoding/json"
	"sort"
)

// The phases, in the reference's order; the names are its stage names
// (and so the hash files' names), plus auth, which keeps no state.
const (
	PhaseExtensions     = "extensions"
	PhaseAuth           = "auth"
	PhaseWriteFiles     = "write_files"
	PhaseApt            = "apt"
	PhaseGit            = "git"
	PhasePip            = "pip"
	PhaseConda          = "conda"
	PhaseDownloads      = "downloads"
	PhaseServices       = "services"
	PhaseWriteFilesLate = "write_files_late"
	PhasePostCommands   = "post_commands"
	PhaseScript         = "provisioning_script"
)

// Phases lists every phase in the order a run takes them.
var Phases = []string{PhaseExtensions, PhaseAuth, PhaseWriteFiles, PhaseApt, PhaseGit, PhasePip,
	PhaseConda, PhaseDownloads, PhaseServices, PhaseWriteFilesLate, PhasePostCommands, PhaseScript}

// Step is one phase of a plan: its name, the hash of its content (what the
// state directory compares) and how many items it has.
type Step struct {
	Phase string
	Hash  string
	Items int
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs, strings and slices are marshalled
	}
	return b
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// extensionsHash covers the extensions and every PROVISIONING_* variable,
// which extensions may read.
func extensionsHash(m *Manifest, env Env) string {
	type ext struct {
		Module  string         `json:"module"`
		Config  map[string]any `json:"config"`
		Enabled bool           `json:"enabled"`
	}
	var exts []ext
	for _, e := range m.Extensions {
		exts = append(exts, ext{e.Module, e.Config, e.Enabled})
	}
	return Hash(PhaseExtensions, mustJSON(struct {
		E   []ext    `json:"extensions"`
		Env []string `json:"provisioning_env"`
	}{exts, provisioningEnv(env)}))
}

// Plan is the phases after extensions and auth (whose outcome it needs),
// each with its content hash, in order; script is PROVISIONING_SCRIPT
// ("" when unset). It is pure: the same manifest gives the same plan.
func Plan(m *Manifest, script string) []Step {
	var steps []Step
	add := func(phase string, items int, content any) {
		steps = append(steps, Step{Phase: phase, Hash: Hash(phase, mustJSON(content)), Items: items})
	}
	add(PhaseWriteFiles, len(m.WriteFiles), m.WriteFiles)
	add(PhaseApt, len(m.AptPackages), sortedCopy(m.AptPackages))
	repos := append([]GitRepo(nil), m.GitRepos...)
	sort.SliceStable(repos, func(i, j int) bool { return repos[i].URL < repos[j].URL })
	add(PhaseGit, len(m.GitRepos), repos)
	type pipKey struct {
		Venv, Tool, Args, Python string
		Packages, Requirements   []string
	}
	var pips []pipKey
	for _, b := range m.PipPackages {
		pips = append(pips, pipKey{orDefault(b.Venv, m.Settings.Venv), b.Tool, b.Args, b.Python, sortedCopy(b.Packages), sortedCopy(b.Requirements)})
	}
	add(PhasePip, len(m.PipPackages), pips)
	type condaKey struct {
		Env, Args, Python  string
		Packages, Channels []string
	}
	var condas []condaKey
	for _, b := range m.CondaPackages {
		condas = append(condas, condaKey{orDefault(b.Env, m.Settings.CondaEnv), b.Args, b.Python, sortedCopy(b.Packages), sortedCopy(b.Channels)})
	}
	add(PhaseConda, len(m.CondaPackages), condas)
	dls := append([]Download(nil), m.Downloads...)
	sort.SliceStable(dls, func(i, j int) bool { return dls[i].URL < dls[j].URL })
	add(PhaseDownloads, len(m.Downloads), dls)
	svcs := append([]Service(nil), m.Services...)
	sort.SliceStable(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	add(PhaseServices, len(m.Services), svcs)
	add(PhaseWriteFilesLate, len(m.WriteFilesLate), m.WriteFilesLate)
	add(PhasePostCommands, len(m.PostCommands), m.PostCommands)
	if script != "" {
		add(PhaseScript, 1, script)
	}
	return steps
}
