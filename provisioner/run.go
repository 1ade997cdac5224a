package provisioner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/instanceportal/portal/atomicfile"
	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/redact"
)

// Exit codes of a run, as the reference's.
const (
	ExitOK     = 0
	ExitFailed = 1
	// ExitConfigRefused: --force refused to clear a foreign state
	// directory. Retrying cannot change it, so neither retries nor the
	// failure action follow.
	ExitConfigRefused = 78
)

// Options is one run.
type Options struct {
	// Source is the manifest's path or URL; "" is script-only mode.
	Source string
	// DryRun prints the plan and changes nothing (no state read or
	// written, no progress published). Force forgets every phase first.
	DryRun, Force bool
	// Env is the environment the run reads (OSEnv in the binary).
	Env Env
	// Runner runs the phases' commands (ExecRunner in the binary).
	Runner Runner
	// Out receives the log (stdout in the binary).
	Out io.Writer
	// Root prefixes the image's fixed paths (PORTAL_ROOT, for tests).
	Root string
	// HTTP fetches manifests and scripts, validates tokens and calls the
	// webhook and the console. Default: a client with a 60 s timeout.
	HTTP *http.Client
	// HFAPI and CivitAIAPI are where tokens are checked.
	// Defaults: HF_ENDPOINT or https://huggingface.co, and
	// https://civitai.com.
	HFAPI, CivitAIAPI string
	// ConsoleAPI is the Vast.ai console that on_failure stop / destroy
	// call. Default: https://console.vast.ai
	ConsoleAPI string
	// Sleep waits between attempts; tests make it instant.
	// Default: a timer bounded by ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock of the log and the progress. Default: time.Now
	Now func() time.Time
	// ProgressInterval bounds how often progress is published.
	// Default: 250ms
	ProgressInterval time.Duration
	// LookPath finds uv, conda and dos2unix. Default: exec.LookPath
	LookPath func(string) (string, error)
	// ComfyRegistry is where provisioner_comfyui resolves a custom node
	// to its repository. Default: https://api.comfy.org/nodes/
	ComfyRegistry string
}

func (o *Options) fill() {
	if o.Env == nil {
		o.Env = OSEnv()
	}
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 60 * time.Second}
	}
	if o.HFAPI == "" {
		o.HFAPI = strings.TrimRight(o.Env.Get("HF_ENDPOINT"), "/")
		if o.HFAPI == "" {
			o.HFAPI = "https://huggingface.co"
		}
	}
	if o.CivitAIAPI == "" {
		o.CivitAIAPI = "https://civitai.com"
	}
	if o.ConsoleAPI == "" {
		o.ConsoleAPI = "https://console.vast.ai"
	}
	if o.Sleep == nil {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 250 * time.Millisecond
	}
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	if o.ComfyRegistry == "" {
		o.ComfyRegistry = "https://api.comfy.org/nodes/"
	}
}

// path is an image path under Root.
func (o *Options) path(p string) string { return o.Root + p }

// PhaseError is a run that failed in a phase.
type PhaseError struct {
	Phase string
	Err   error
}

func (e *PhaseError) Error() string { return fmt.Sprintf("phase %s: %v", e.Phase, e.Err) }
func (e *PhaseError) Unwrap() error { return e.Err }

// run is one invocation: the options, the log, the progress, the state.
type run struct {
	opt   Options
	log   *logger
	prog  *progress
	state State
}

// Result is how a run ended.
type Result struct {
	Code int
	// Err is the last attempt's error (a *PhaseError when a phase
	// failed), nil on success.
	Err error
}

// Run loads the manifest (or none: script-only mode), runs it with the
// on_failure retries, and on the last failure runs the failure action.
func Run(ctx context.Context, opt Options) Result {
	opt.fill()
	mk := &masker{}
	mk.set(opt.Env.Get("HF_TOKEN"), opt.Env.Get("CIVITAI_TOKEN"), opt.Env.Get("CONTAINER_API_KEY"))
	r := &run{opt: opt, log: &logger{out: opt.Out, now: opt.Now, mask: mk}}
	defer r.log.close()
	dir, warn := StateDir(opt.Env)
	r.state = State{Dir: dir}
	if warn != "" {
		r.log.Warn(warn)
	}
	script := opt.Env.Get(EnvScript)
	var (
		m      *Manifest
		source = "(script-only)"
	)
	if opt.Source == "" {
		if script == "" {
			r.log.Info("No manifest and no PROVISIONING_SCRIPT set, nothing to do")
			return Result{}
		}
		m = NewManifest()
	} else {
		source = redact.URLs(opt.Source)
		path, err := r.resolveSource(ctx, opt.Source, opt.path("/provisioning.yaml"), "manifest")
		if err == nil {
			m, err = r.load(path)
		}
		if err != nil {
			r.log.Error(err.Error())
			if !opt.DryRun {
				r.publishRefusal(source, err)
			}
			return Result{Code: ExitFailed, Err: r.masked(err)}
		}
	}
	mk.set(opt.Env.Get(m.Auth.HFTokenEnv), opt.Env.Get(m.Auth.CivitAITokenEnv), opt.Env.Get("HF_TOKEN"),
		opt.Env.Get("CIVITAI_TOKEN"), opt.Env.Get("CONTAINER_API_KEY"))
	for _, w := range ApplyOverrides(m, opt.Env) {
		r.log.Warn(w)
	}
	// The image's log directory may be elsewhere (PORTAL_LOG_DIR, set by
	// the entrypoint); the default log follows it.
	if d := opt.Env.Get("PORTAL_LOG_DIR"); d != "" && m.Settings.LogFile == DefaultLogFile {
		m.Settings.LogFile = filepath.Join(d, "provisioning.log")
	}
	if err := r.log.open(m.Settings.LogFile); err != nil {
		r.log.Warn("could not open log file " + m.Settings.LogFile + ": " + err.Error())
	}
	progressPath := ""
	if !opt.DryRun {
		if err := r.state.Ensure(); err != nil {
			r.log.Warn("cannot create the state directory " + r.state.Dir + ": " + err.Error() + "; phases will rerun next time")
		}
		progressPath = provstatus.Path(r.state.Dir)
	}
	r.prog = newProgress(progressPath, opt.ProgressInterval, opt.Now, r.log)
	defer r.prog.close()
	r.prog.update(true, func(s *provstatus.Status) {
		now := opt.Now().UTC()
		*s = provstatus.Status{State: provstatus.Running, Source: source, DryRun: opt.DryRun, StartedAt: now,
			Phases: []provstatus.Phase{}, Downloads: []provstatus.Download{}}
		for _, p := range Phases {
			if p == PhaseScript && script == "" {
				continue
			}
			s.Phases = append(s.Phases, provstatus.Phase{Name: p, State: provstatus.Pending})
		}
	})

	attempts := m.OnFailure.MaxRetries
	if opt.DryRun || attempts < 1 {
		attempts = 1
	}
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		err = r.attempt(ctx, m, script, opt.Force && attempt == 1)
		if err == nil || errors.Is(err, ErrForeignStateDir) || ctx.Err() != nil {
			break
		}
		if attempt < attempts {
			r.log.Warn(fmt.Sprintf("Attempt %d/%d failed, retrying in %ds...", attempt, attempts, m.OnFailure.RetryDelay))
			if r.opt.Sleep(ctx, time.Duration(m.OnFailure.RetryDelay)*time.Second) != nil {
				break
			}
		} else if attempts > 1 {
			r.log.Error(fmt.Sprintf("All %d attempts exhausted", attempts))
		}
	}
	res := r.finish(ctx, m, source, err)
	return res
}

// finish publishes the end state and, for a real run, the webhook and
// the failure action.
func (r *run) finish(ctx context.Context, m *Manifest, source string, err error) Result {
	end := r.opt.Now().UTC()
	switch {
	case err == nil:
		r.prog.update(true, func(s *provstatus.Status) { s.State, s.FinishedAt = provstatus.Done, &end })
		r.log.Info("Provisioning complete!")
		if !r.opt.DryRun {
			r.notifySuccess(ctx, m.OnFailure, source)
		}
		return Result{}
	case errors.Is(err, ErrForeignStateDir):
		r.log.Error("--force: " + err.Error())
		r.prog.update(true, func(s *provstatus.Status) {
			s.State, s.FinishedAt, s.Error = provstatus.Failed, &end, r.log.mask.text(err.Error())
		})
		return Result{Code: ExitConfigRefused, Err: r.masked(err)}
	}
	state := provstatus.Failed
	if ctx.Err() != nil {
		state = provstatus.Stopped
	}
	r.prog.update(true, func(s *provstatus.Status) {
		s.State, s.FinishedAt, s.Error = state, &end, r.log.mask.text(err.Error())
		var pe *PhaseError
		if errors.As(err, &pe) {
			s.FailedPhase = pe.Phase
		}
	})
	if !r.opt.DryRun && ctx.Err() == nil {
		msg := "provisioning failed"
		if m.OnFailure.MaxRetries > 1 {
			msg = "provisioning failed after all retries"
		}
		r.handleFailure(ctx, m.OnFailure, source, msg)
	}
	return Result{Code: ExitFailed, Err: r.masked(err)}
}

// PhaseManifest names, in the progress, a manifest that could not be
// fetched or read: no phase ran.
const PhaseManifest = "manifest"

// publishRefusal publishes a run that ended before its first phase.
func (r *run) publishRefusal(source string, err error) {
	if r.state.Ensure() != nil {
		return
	}
	now := r.opt.Now().UTC()
	_ = provstatus.Write(provstatus.Path(r.state.Dir), provstatus.Status{
		State: provstatus.Failed, Source: source, StartedAt: now, UpdatedAt: now, FinishedAt: &now,
		Phases: []provstatus.Phase{}, Downloads: []provstatus.Download{},
		FailedPhase: PhaseManifest, Error: r.log.mask.text(err.Error()),
	})
}

// maskedError is an error whose text has its secrets hidden, still
// matching what it wraps (errors.As finds a *PhaseError).
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

func (r *run) masked(err error) error {
	return &maskedError{msg: r.log.mask.text(err.Error()), err: err}
}

// load parses the manifest file.
func (r *run) load(path string) (*Manifest, error) {
	r.log.Info("Loading manifest: " + path)
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to load manifest: %w", err)
	}
	m, warns, err := Parse(body, path, r.opt.Env.Lookup)
	for _, w := range warns {
		r.log.Warn(w.String())
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load manifest: %w", err)
	}
	return m, nil
}

// resolveSource returns a local path for src, fetching an http(s) URL to
// cache first (through a temp file and a rename).
func (r *run) resolveSource(ctx context.Context, src, cache, label string) (string, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return src, nil
	}
	r.log.Info(fmt.Sprintf("Downloading %s from %s", label, src))
	body, err := r.fetch(ctx, src, 16<<20)
	if err != nil {
		return "", fmt.Errorf("failed to download %s from %s: %w", label, redact.URLs(src), err)
	}
	if err := atomicfile.Write(cache, body, 0o644); err != nil {
		return "", fmt.Errorf("failed to write %s to %s: %w", label, cache, err)
	}
	r.log.Info(fmt.Sprintf("%s saved to %s (%d bytes)", strings.ToUpper(label[:1])+label[1:], cache, len(body)))
	return cache, nil
}

func (r *run) fetch(ctx context.Context, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	req.Header.Set("User-Agent", "provisioner/1")
	resp, err := r.opt.HTTP.Do(req)
	if err != nil {
		// The error text repeats the URL; say what failed without it.
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			return nil, ue.Unwrap()
		}
		return nil, errors.New("request failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// cloneManifest copies m deep enough that an attempt's additions
// (extensions, conditionals, conventions) do not pile up across retries.
func cloneManifest(m *Manifest) *Manifest {
	c := *m
	c.Extensions = append([]Extension(nil), m.Extensions...)
	c.WriteFiles = append([]FileWrite(nil), m.WriteFiles...)
	c.AptPackages = append([]string(nil), m.AptPackages...)
	c.GitRepos = append([]GitRepo(nil), m.GitRepos...)
	c.PipPackages = append([]PipBlock(nil), m.PipPackages...)
	c.CondaPackages = append([]CondaBlock(nil), m.CondaPackages...)
	c.Downloads = append([]Download(nil), m.Downloads...)
	c.ConditionalDownloads = append([]ConditionalDownload(nil), m.ConditionalDownloads...)
	c.Services = append([]Service(nil), m.Services...)
	c.WriteFilesLate = append([]FileWrite(nil), m.WriteFilesLate...)
	c.PostCommands = append([]string(nil), m.PostCommands...)
	return &c
}

// attempt is one pass over every phase; the first failure ends it.
func (r *run) attempt(ctx context.Context, base *Manifest, script string, force bool) error {
	m := cloneManifest(base)
	r.log.Info("Provisioner starting (version 1)")
	if r.opt.DryRun {
		r.log.Info("=== DRY RUN MODE ===")
	}
	if force && !r.opt.DryRun {
		r.log.Info("=== FORCE MODE: clearing all state ===")
		if err := r.state.Clear(); err != nil {
			return err
		}
	}
	r.prog.update(true, func(s *provstatus.Status) {
		for i := range s.Phases {
			s.Phases[i].State, s.Phases[i].Error = provstatus.Pending, ""
		}
		s.Downloads = []provstatus.Download{}
		s.FailedPhase, s.Error = "", ""
	})

	// Phase 1b: extensions may add to the manifest's lists.
	r.log.Info("--- Phase 1b: Extensions ---")
	if err := r.phase(PhaseExtensions, extensionsHash(m, r.opt.Env), len(m.Extensions), "Extensions unchanged, skipping",
		func() error { return r.runExtensions(ctx, m) }); err != nil {
		return err
	}

	// Phase 2: tokens decide conditional downloads; then env_merge and
	// the PROVISIONING_* conventions add their entries.
	r.prog.phase(PhaseAuth, provstatus.Running, "", 0)
	hfValid := r.validateToken(ctx, "HuggingFace", m.Auth.HFTokenEnv, r.opt.HFAPI+"/api/whoami-v2")
	civValid := r.validateToken(ctx, "CivitAI", m.Auth.CivitAITokenEnv, r.opt.CivitAIAPI+"/api/v1/models?hidden=1&limit=1")
	for _, w := range ResolveConditionals(m, hfValid, civValid) {
		r.log.Warn(w)
	}
	for _, w := range ApplyEnvMerge(m, r.opt.Env) {
		r.log.Warn(w)
	}
	for _, w := range ApplyConventions(m, r.opt.Env) {
		r.log.Warn(w)
	}
	r.prog.phase(PhaseAuth, provstatus.Done, "", 0)

	steps := Plan(m, script)
	labels := map[string][2]string{
		PhaseWriteFiles:     {"--- Phase 2b: Early file writes ---", "Early files unchanged, skipping"},
		PhaseApt:            {"--- Phase 3: APT packages ---", "APT packages unchanged, skipping"},
		PhaseGit:            {"--- Phase 4: Git repos ---", "Git repos unchanged, skipping"},
		PhasePip:            {"--- Phase 5: Pip packages ---", "Pip packages unchanged, skipping"},
		PhaseConda:          {"--- Phase 5b: Conda packages ---", "Conda packages unchanged, skipping"},
		PhaseDownloads:      {"--- Phase 6: Downloads ---", "Downloads unchanged, skipping"},
		PhaseServices:       {"--- Phase 7: Supervisor services ---", "Services unchanged, skipping"},
		PhaseWriteFilesLate: {"--- Phase 7b: Late file writes ---", "Late files unchanged, skipping"},
		PhasePostCommands:   {"--- Phase 8: Post commands ---", "Post commands unchanged, skipping"},
		PhaseScript:         {"--- Phase 9: Provisioning script ---", "Provisioning script unchanged, skipping"},
	}
	do := map[string]func() error{
		PhaseWriteFiles:     func() error { return r.writeFiles(m.WriteFiles, "write_files") },
		PhaseApt:            func() error { return r.apt(ctx, m.AptPackages) },
		PhaseGit:            func() error { return r.git(ctx, m.GitRepos) },
		PhasePip:            func() error { return r.pip(ctx, m) },
		PhaseConda:          func() error { return r.conda(ctx, m) },
		PhaseDownloads:      func() error { return r.downloads(ctx, m) },
		PhaseServices:       func() error { return r.services(ctx, m.Services) },
		PhaseWriteFilesLate: func() error { return r.writeFiles(m.WriteFilesLate, "write_files_late") },
		PhasePostCommands:   func() error { return r.postCommands(ctx, m.PostCommands) },
		PhaseScript:         func() error { return r.script(ctx, script) },
	}
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return &PhaseError{Phase: st.Phase, Err: err}
		}
		r.log.Info(labels[st.Phase][0])
		if err := r.phase(st.Phase, st.Hash, st.Items, labels[st.Phase][1], do[st.Phase]); err != nil {
			return err
		}
	}
	if !r.opt.DryRun {
		for _, d := range m.Downloads {
			if d.Dest != "" && !strings.HasSuffix(d.Dest, "/") {
				os.Remove(d.Dest + ".lock")
			}
		}
	}
	return nil
}

// phase runs fn unless the state says this content is done; a success is
// recorded (never in a dry run).
func (r *run) phase(name, hash string, items int, skipMsg string, fn func() error) error {
	if !r.opt.DryRun && r.state.Done(name, hash) {
		r.log.Info(skipMsg)
		r.prog.phase(name, provstatus.Skipped, "", items)
		return nil
	}
	r.prog.phase(name, provstatus.Running, "", items)
	if err := fn(); err != nil {
		r.log.Error(fmt.Sprintf("%s failed: %v", name, err))
		r.prog.phase(name, provstatus.Failed, err.Error(), items)
		return &PhaseError{Phase: name, Err: err}
	}
	if !r.opt.DryRun {
		if err := r.state.Mark(name, hash); err != nil {
			r.log.Warn(fmt.Sprintf("could not record phase %s (%v); it will rerun next time", name, err))
		}
	}
	r.prog.phase(name, provstatus.Done, "", items)
	return nil
}

// exec runs one command of phase, its output into the log and the
// progress tail.
func (r *run) exec(ctx context.Context, phase string, c Command) error {
	r.prog.command(phase, c.String())
	return r.opt.Runner.Run(ctx, c, func(line string) {
		r.log.Info("  " + line)
		r.prog.output(line)
	})
}
