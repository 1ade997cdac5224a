package provisioner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/instanceportal/portal/atomicfile"
	"github.com/instanceportal/portal/download"
	"github.com/instanceportal/portal/redact"
	"github.com/instanceportal/portal/shellwords"
)

// validateToken asks the hub whether the token in env var name is good.
// A missing token or any failure is "invalid", as on the reference. The
// token goes only into the Authorization header.
func (r *run) validateToken(ctx context.Context, hub, name, url string) bool {
	token := r.opt.Env.Get(name)
	if token == "" {
		r.log.Info(fmt.Sprintf("No %s token found ($%s not set)", hub, name))
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err == nil {
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("User-Agent", "Mozilla/5.0 (compatible; instance-portal-provisioner)")
		var resp *http.Response
		resp, err = r.opt.HTTP.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.log.Info(hub + " token is valid")
				return true
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
	}
	r.log.Warn(fmt.Sprintf("%s token validation failed: %v", hub, strings.ReplaceAll(fmt.Sprint(err), token, "…")))
	r.log.Warn(hub + " token is invalid")
	return false
}

// writeFiles is write_files / write_files_late: parents created, content
// written, mode set, owner set when it can be (a warning otherwise).
func (r *run) writeFiles(files []FileWrite, label string) error {
	if len(files) == 0 {
		r.log.Info("No files to write (" + label + ")")
		return nil
	}
	for _, f := range files {
		if r.opt.DryRun {
			preview := f.Content
			if len(preview) > 80 {
				preview = preview[:80] + "..."
			}
			owner := f.Owner
			if owner == "" {
				owner = "default"
			}
			r.log.Info(fmt.Sprintf("[DRY RUN] Would write %s (mode=%s, owner=%s): %q", f.Path, f.Permissions, owner, preview))
			continue
		}
		mode, err := parseMode(f.Permissions)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f.Path, []byte(f.Content), os.FileMode(mode)); err != nil {
			return err
		}
		if err := os.Chmod(f.Path, os.FileMode(mode)); err != nil {
			return err
		}
		if f.Owner == "" {
			r.log.Info(fmt.Sprintf("Wrote %s (mode=%s)", f.Path, f.Permissions))
			continue
		}
		if err := chown(f.Path, f.Owner); err != nil {
			r.log.Warn(fmt.Sprintf("Wrote %s but could not set owner %s: %v", f.Path, f.Owner, err))
		} else {
			r.log.Info(fmt.Sprintf("Wrote %s (mode=%s, owner=%s)", f.Path, f.Permissions, f.Owner))
		}
	}
	return nil
}

// chown sets "user" (its primary group) or "user:group".
func chown(path, owner string) error {
	name, group, _ := strings.Cut(owner, ":")
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return err
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return os.Chown(path, uid, gid)
}

// apt installs the packages: apt-get update, then one install.
func (r *run) apt(ctx context.Context, pkgs []string) error {
	if len(pkgs) == 0 {
		r.log.Info("No apt packages to install")
		return nil
	}
	r.log.Info(fmt.Sprintf("Installing %d apt packages: %s", len(pkgs), strings.Join(pkgs, ", ")))
	if r.opt.DryRun {
		r.log.Info("[DRY RUN] Would install apt packages: " + strings.Join(pkgs, ", "))
		return nil
	}
	for _, p := range pkgs {
		if strings.HasPrefix(p, "-") {
			return fmt.Errorf("%q is not a package name", p)
		}
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	if err := r.exec(ctx, PhaseApt, Command{Argv: []string{"apt-get", "update", "-qq"}, Env: env}); err != nil {
		return err
	}
	argv := append([]string{"apt-get", "install", "-y", "-qq", "--no-install-recommends", "--"}, pkgs...)
	if err := r.exec(ctx, PhaseApt, Command{Argv: argv, Env: env}); err != nil {
		return err
	}
	r.log.Info("APT packages installed successfully")
	return nil
}

// gitWorkers is how many repositories are cloned at once (the
// reference's).
const gitWorkers = 4

// git clones the repositories in parallel, then runs each one's
// post_commands in turn in its directory (after all clones, so that two
// repositories never install into one venv at once).
func (r *run) git(ctx context.Context, repos []GitRepo) error {
	if len(repos) == 0 {
		r.log.Info("No git repos to clone")
		return nil
	}
	unique, links := DedupGitRepos(repos)
	for _, w := range links.warnings {
		r.log.Warn(w)
	}
	if r.opt.DryRun {
		for _, g := range unique {
			r.log.Info(fmt.Sprintf("[DRY RUN] Would clone %s -> %s", g.URL, g.Dest))
			for _, c := range g.PostCommands {
				r.log.Info(fmt.Sprintf("[DRY RUN] Would run post command in %s: %s", g.Dest, c))
			}
		}
		r.symlinks(links.pairs)
		return nil
	}
	r.log.Info(fmt.Sprintf("Starting %d git clones (max %d parallel)", len(unique), gitWorkers))
	errs := make([]error, len(unique))
	var clones errgroup.Group
	clones.SetLimit(gitWorkers)
	for i, g := range unique {
		clones.Go(func() error {
			errs[i] = r.clone(ctx, g)
			if errs[i] != nil {
				r.log.Error(fmt.Sprintf("Failed git clone %s: %v", g.URL, errs[i]))
			}
			return nil
		})
	}
	_ = clones.Wait()
	if err := errors.Join(errs...); err != nil {
		n := 0
		for _, e := range errs {
			if e != nil {
				n++
			}
		}
		return fmt.Errorf("%d git clone(s) failed: %w", n, err)
	}
	for _, g := range unique {
		for _, c := range g.PostCommands {
			r.log.Info(fmt.Sprintf("Running post command in %s: %s", g.Dest, c))
			if err := r.exec(ctx, PhaseGit, Command{Shell: c, Dir: g.Dest}); err != nil {
				return fmt.Errorf("post command in %s: %w", g.Dest, err)
			}
		}
	}
	r.symlinks(links.pairs)
	return nil
}

func (r *run) clone(ctx context.Context, g GitRepo) error {
	if strings.HasPrefix(g.URL, "-") || strings.HasPrefix(g.Ref, "-") {
		return fmt.Errorf("%q: not a repository or ref", g.URL)
	}
	if fi, err := os.Stat(g.Dest); err == nil && fi.IsDir() {
		if !g.PullIfExists {
			r.log.Info(fmt.Sprintf("Repo already exists: %s (skipping)", g.Dest))
			return nil
		}
		r.log.Info("Pulling existing repo: " + g.Dest)
		if err := r.exec(ctx, PhaseGit, Command{Argv: []string{"git", "-C", g.Dest, "pull"}}); err != nil {
			return err
		}
	} else {
		r.log.Info(fmt.Sprintf("Cloning %s -> %s", g.URL, g.Dest))
		argv := []string{"git", "clone"}
		if g.Recursive {
			argv = append(argv, "--recursive")
		}
		argv = append(argv, "--", g.URL, g.Dest)
		if err := r.exec(ctx, PhaseGit, Command{Argv: argv}); err != nil {
			return err
		}
	}
	if g.Ref != "" {
		r.log.Info("Checking out ref: " + g.Ref)
		if err := r.exec(ctx, PhaseGit, Command{Argv: []string{"git", "-C", g.Dest, "checkout", g.Ref}}); err != nil {
			return err
		}
	}
	r.log.Info("Git repo ready: " + g.Dest)
	return nil
}

// symlinks makes each (target, link) pair, skipping a link that exists or
// a target that does not.
func (r *run) symlinks(pairs [][2]string) {
	for _, p := range pairs {
		src, dst := p[0], p[1]
		if r.opt.DryRun {
			r.log.Info(fmt.Sprintf("[DRY RUN] Would symlink %s -> %s", dst, src))
			continue
		}
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if _, err := os.Stat(src); err != nil {
			r.log.Warn(fmt.Sprintf("Symlink source does not exist, skipping: %s -> %s", dst, src))
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			err = os.Symlink(src, dst)
			if err == nil {
				r.log.Info(fmt.Sprintf("Created symlink: %s -> %s", dst, src))
				continue
			}
		}
		r.log.Warn(fmt.Sprintf("Could not create symlink %s -> %s", dst, src))
	}
}

// PipCommands is what one pip block runs, in order: the venv's creation
// when the block names a venv or a Python that is missing, the packages,
// then each requirements file. uv is used when the block asks for it and
// it is on PATH; otherwise pip, through the target's python.
func PipCommands(b PipBlock, defaultVenv string, uvPath string, venvExists func(string) bool) []Command {
	venv := b.Venv
	if venv == "" {
		venv = defaultVenv
	}
	if venv == "" {
		venv = DefaultVenv
	}
	system := venv == "system"
	tool := "uv"
	if b.Tool == "pip" || uvPath == "" {
		tool = "pip"
	}
	var cmds []Command
	if !system && (b.Venv != "" || b.Python != "") && !venvExists(venv) {
		if uvPath != "" {
			argv := []string{uvPath, "venv"}
			if b.Python != "" {
				argv = append(argv, "--python", b.Python)
			}
			cmds = append(cmds, Command{Argv: append(argv, venv)})
		} else {
			cmds = append(cmds, Command{Argv: []string{"python" + orDefault(b.Python, "3"), "-m", "venv", venv}})
		}
	}
	python := venv + "/bin/python"
	if system {
		python = "python3"
		if b.Python != "" {
			python = "/usr/bin/python" + b.Python
		}
	}
	base := func() []string {
		var argv []string
		if tool == "uv" {
			argv = []string{uvPath, "pip", "install", "--no-cache", "--python", python}
			if system {
				argv = append(argv, "--system", "--break-system-packages")
			}
		} else {
			argv = []string{python, "-m", "pip", "install", "--no-cache-dir"}
			if system {
				argv = append(argv, "--break-system-packages")
			}
		}
		return argv
	}
	extra := shellwords.Split(b.Args)
	if len(b.Packages) > 0 {
		argv := append(base(), extra...)
		cmds = append(cmds, Command{Argv: append(argv, b.Packages...)})
	}
	for _, req := range b.Requirements {
		argv := append(base(), "-r", req)
		cmds = append(cmds, Command{Argv: append(argv, extra...)})
	}
	return cmds
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// pip runs each block in turn.
func (r *run) pip(ctx context.Context, m *Manifest) error {
	if len(m.PipPackages) == 0 {
		r.log.Info("No pip packages to install")
		return nil
	}
	uv, _ := r.opt.LookPath("uv")
	for _, b := range m.PipPackages {
		if len(b.Packages) == 0 && len(b.Requirements) == 0 {
			r.log.Info("No pip packages to install")
			continue
		}
		venv := orDefault(b.Venv, m.Settings.Venv)
		target := venv
		if venv == "system" {
			target = "system python"
		}
		if r.opt.DryRun {
			if len(b.Packages) > 0 {
				r.log.Info(fmt.Sprintf("[DRY RUN] Would install pip packages (%s) in %s: %s", b.Tool, target, strings.Join(b.Packages, ", ")))
			}
			if len(b.Requirements) > 0 {
				r.log.Info(fmt.Sprintf("[DRY RUN] Would install requirements in %s: %s", target, strings.Join(b.Requirements, ", ")))
			}
			continue
		}
		if b.Tool == "uv" && uv == "" {
			r.log.Info("uv is not installed: using pip")
		}
		cmds := PipCommands(b, m.Settings.Venv, uv, func(v string) bool {
			_, err := os.Stat(filepath.Join(v, "bin", "python"))
			return err == nil
		})
		r.log.Info(fmt.Sprintf("Installing %d pip packages in %s: %s", len(b.Packages), target, strings.Join(b.Packages, ", ")))
		for _, c := range cmds {
			if err := r.exec(ctx, PhasePip, c); err != nil {
				return err
			}
		}
	}
	if !r.opt.DryRun {
		r.log.Info("Pip packages installed successfully")
	}
	return nil
}

// condaTool is mamba or conda: /opt/miniforge3/bin first, then PATH.
func (r *run) condaTool() (string, error) {
	for _, p := range []string{r.opt.path("/opt/miniforge3/bin/mamba"), r.opt.path("/opt/miniforge3/bin/conda")} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	for _, n := range []string{"mamba", "conda"} {
		if p, err := r.opt.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", errors.New("neither mamba nor conda found at /opt/miniforge3/bin/ or in PATH")
}

// CondaCommands is what one conda block runs: the prefix's creation when
// it has no conda-meta/, then the install.
func CondaCommands(b CondaBlock, defaultEnv, tool string, envExists func(string) bool) []Command {
	env := orDefault(b.Env, defaultEnv)
	var cmds []Command
	if env != "" && !envExists(env) {
		argv := []string{tool, "create", "-y", "-p", env}
		if b.Python != "" {
			argv = append(argv, "python="+b.Python)
		}
		cmds = append(cmds, Command{Argv: argv})
	}
	argv := []string{tool, "install", "-y"}
	if env != "" {
		argv = append(argv, "-p", env)
	}
	for _, c := range b.Channels {
		argv = append(argv, "-c", c)
	}
	argv = append(argv, shellwords.Split(b.Args)...)
	return append(cmds, Command{Argv: append(argv, b.Packages...)})
}

func (r *run) conda(ctx context.Context, m *Manifest) error {
	if len(m.CondaPackages) == 0 {
		r.log.Info("No conda packages to install")
		return nil
	}
	for _, b := range m.CondaPackages {
		if len(b.Packages) == 0 {
			r.log.Info("No conda packages to install")
			continue
		}
		env := orDefault(b.Env, m.Settings.CondaEnv)
		target := orDefault(env, "base environment")
		if r.opt.DryRun {
			r.log.Info(fmt.Sprintf("[DRY RUN] Would install conda packages in %s: %s", target, strings.Join(b.Packages, ", ")))
			if len(b.Channels) > 0 {
				r.log.Info("[DRY RUN] Channels: " + strings.Join(b.Channels, ", "))
			}
			continue
		}
		tool, err := r.condaTool()
		if err != nil {
			return err
		}
		r.log.Info(fmt.Sprintf("Installing %d conda packages with %s in %s: %s", len(b.Packages), filepath.Base(tool), target, strings.Join(b.Packages, ", ")))
		for _, c := range CondaCommands(b, m.Settings.CondaEnv, tool, func(p string) bool {
			fi, err := os.Stat(filepath.Join(p, "conda-meta"))
			return err == nil && fi.IsDir()
		}) {
			if err := r.exec(ctx, PhaseConda, c); err != nil {
				return err
			}
		}
	}
	if !r.opt.DryRun {
		r.log.Info("Conda packages installed successfully")
	}
	return nil
}

// downloads hands the (deduplicated) entries to package download, which
// runs the reference's two pools at once and reports each file's progress,
// then links duplicates. Tokens go to it as values, sent only as headers.
func (r *run) downloads(ctx context.Context, m *Manifest) error {
	unique, links := DedupDownloads(m.Downloads)
	if len(unique) == 0 {
		r.log.Info("No downloads to process")
		return nil
	}
	specs := make([]download.Spec, len(unique))
	for i, d := range unique {
		specs[i] = download.Spec{URL: d.URL, Dest: d.Dest}
	}
	opts := download.Options{
		HFEndpoint:     r.opt.Env.Get(download.HFEndpointEnv),
		HFToken:        r.opt.Env.Get(m.Auth.HFTokenEnv),
		CivitAIToken:   r.opt.Env.Get(m.Auth.CivitAITokenEnv),
		HFHome:         r.opt.Env.Get(download.HFHomeEnv),
		HFConcurrency:  m.Settings.HFDownloads,
		URLConcurrency: m.Settings.WgetDownloads,
		Retries:        m.Settings.MaxAttempts,
		RetryDelay:     time.Duration(m.Settings.InitialDelay) * time.Second,
		Backoff:        m.Settings.BackoffMultiplier,
		OnProgress:     r.prog.download,
		Log:            r.log.Info,
	}
	if m.Settings.InitialDelay == 0 {
		opts.RetryDelay = -1 // no wait, which download's zero value would not mean
	}
	if r.opt.DryRun {
		for _, s := range specs {
			r.log.Info(download.DryRunLine(s, opts))
		}
		r.symlinks(links)
		return nil
	}
	if err := download.Run(ctx, specs, opts); err != nil {
		return err
	}
	r.symlinks(links)
	return nil
}

// postCommands runs each command with /bin/sh -c; the first failure ends
// the phase.
func (r *run) postCommands(ctx context.Context, cmds []string) error {
	for _, c := range cmds {
		if r.opt.DryRun {
			r.log.Info("[DRY RUN] Would run: " + c)
			continue
		}
		r.log.Info("Running: " + c)
		if err := r.exec(ctx, PhasePostCommands, Command{Shell: c}); err != nil {
			return err
		}
	}
	return nil
}

// script is PROVISIONING_SCRIPT: fetched when a URL, Windows line endings
// removed, made executable and run.
func (r *run) script(ctx context.Context, src string) error {
	if r.opt.DryRun {
		r.log.Info("[DRY RUN] Would download and run PROVISIONING_SCRIPT: " + redact.URLs(src))
		return nil
	}
	path, err := r.resolveSource(ctx, src, r.opt.path("/provisioning.sh"), "script")
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if bytes.Contains(b, []byte("\r\n")) {
		if err := atomicfile.Write(path, bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(path, 0o755); err != nil {
		return err
	}
	r.log.Info("Running provisioning script: " + path)
	return r.exec(ctx, PhaseScript, Command{Argv: []string{path}})
}
