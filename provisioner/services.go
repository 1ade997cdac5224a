package provisioner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/instanceportal/portal/atomicfile"
	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/supervisor"
)

// shellQuote quotes s for POSIX sh, single quotes outside.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dquote escapes s for a double-quoted shell string, as the reference's
// environment exports (so `$`, backticks and quotes arrive literally).
func dquote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(s) + `"`
}

// ServiceFiles are the paths a service writes.
type ServiceFiles struct {
	Script, Conf string
}

func (r *run) serviceFiles(name string) ServiceFiles {
	return ServiceFiles{
		Script: r.opt.path("/opt/supervisor-scripts/" + name + ".sh"),
		Conf:   r.opt.path("/etc/supervisor/conf.d/" + name + ".conf"),
	}
}

// ServiceScript is the wrapper supervisord runs for s: the template utils
// every wrapper sources (logging, cleanup, environment, and exit_portal.sh
// when portal_search_term is set), the serverless exit, the venv, the
// wait for provisioning, the exports, then pre_commands and the command,
// last, so that it is the process supervisord watches. root is the image
// root (PORTAL_ROOT, "" in the image).
func ServiceScript(s Service, root string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("#!/bin/bash\n# Written by the provisioner from the manifest's services entry %q.\n\n", s.Name)
	w("utils=%s\n", shellQuote(root+"/opt/supervisor-scripts/utils"))
	w(". \"${utils}/logging.sh\"\n. \"${utils}/cleanup_generic.sh\"\n. \"${utils}/environment.sh\"\n")
	if s.SkipOnServerless {
		w("if [[ ${SERVERLESS:-} == [Tt][Rr][Uu][Ee] ]]; then\n    echo \"Skipping ${PROC_NAME} startup (serverless)\"\n    sleep 6\n    exit 0\nfi\n")
	}
	if s.PortalSearchTerm != "" {
		w(". \"${utils}/exit_portal.sh\" %s\n", shellQuote(s.PortalSearchTerm))
	}
	if s.Venv != "" && s.Venv != "system" {
		w("\n# Activate virtual environment\n. %s\n", shellQuote(s.Venv+"/bin/activate"))
	}
	w("\n")
	if s.WaitForProvisioning {
		w("# Wait for provisioning to complete\nwhile [ -f \"${PROVISIONING_LOCK:-%s/.provisioning}\" ]; do\n", root)
		w("    echo \"$PROC_NAME startup paused until instance provisioning has completed (/.provisioning present)\"\n    sleep 5\ndone\n\n")
	}
	w("# Set environment variables\n")
	if len(s.Environment) == 0 {
		w("# (none)\n")
	}
	for _, e := range s.Environment {
		w("export %s=%s\n", e.Name, dquote(e.Value))
	}
	w("\n# Launch application\n")
	if s.Workdir != "" {
		w("cd %s || exit 1\n", shellQuote(s.Workdir))
	}
	for _, c := range s.PreCommands {
		w("%s\n", c)
	}
	w("%s\n", s.Command)
	return b.String()
}

// ServiceConf is the supervisord program for s (the reference's settings:
// restarted only on an unexpected exit, RUNNING after 5 s up).
func ServiceConf(name, script string) string {
	return fmt.Sprintf(`; Written by the provisioner from the manifest's services entry.
[program:%s]
environment=PROC_NAME="%%(program_name)s"
command=%s
autostart=true
autorestart=unexpected
exitcodes=0
startsecs=5
stopasgroup=true
killasgroup=true
stopsignal=TERM
stopwaitsecs=10
stdout_logfile=/dev/stdout
redirect_stderr=true
stdout_events_enabled=true
stdout_logfile_maxbytes=0
stdout_logfile_backups=0
`, name, script)
}

// services writes each service's wrapper and program (and portal.yaml
// entry), then has supervisord reread and update, and checks that it
// knows every program.
func (r *run) services(ctx context.Context, svcs []Service) error {
	if len(svcs) == 0 {
		r.log.Info("No supervisor services to register")
		return nil
	}
	for _, s := range svcs {
		if !safeName(s.Name) {
			return fmt.Errorf("invalid service name %q: want [a-zA-Z0-9_-]+", s.Name)
		}
		f := r.serviceFiles(s.Name)
		script, conf := ServiceScript(s, r.opt.Root), ServiceConf(s.Name, f.Script)
		if r.opt.DryRun {
			r.log.Info("[DRY RUN] Would write startup script: " + f.Script)
			r.log.Info("[DRY RUN] Script content:\n" + script)
			r.log.Info("[DRY RUN] Would write supervisor config: " + f.Conf)
			r.log.Info("[DRY RUN] Config content:\n" + conf)
			if s.InternalPort != 0 {
				r.log.Info(fmt.Sprintf("[DRY RUN] Would add %q to %s (%d -> %d)", appName(s), r.portalYAML(), s.ExternalPort, s.InternalPort))
			}
			continue
		}
		if err := atomicfile.Write(f.Script, []byte(script), 0o755); err != nil {
			return err
		}
		r.log.Info("Wrote startup script: " + f.Script)
		if err := atomicfile.Write(f.Conf, []byte(conf), 0o644); err != nil {
			return err
		}
		r.log.Info("Wrote supervisor config: " + f.Conf)
		if s.InternalPort != 0 {
			if err := AddPortalApp(r.portalYAML(), appName(s), s); err != nil {
				return err
			}
			r.log.Info(fmt.Sprintf("Added %q to %s", appName(s), r.portalYAML()))
		}
	}
	if r.opt.DryRun {
		return nil
	}
	return r.supervisorUpdate(ctx, svcs)
}

func appName(s Service) string { return orDefault(s.PortalSearchTerm, s.Name) }

func (r *run) portalYAML() string {
	return orDefault(r.opt.Env.Get("PORTAL_YAML"), r.opt.path("/etc/portal.yaml"))
}

func (r *run) supervisorUpdate(ctx context.Context, svcs []Service) error {
	sock := orDefault(r.opt.Env.Get("SUPERVISOR_SOCKET"), r.opt.path(portalconfig.DefaultSupervisorSocket))
	sv, err := supervisor.New(supervisor.Config{Socket: sock})
	if err != nil {
		return err
	}
	wait := 60
	if v, err := strconv.Atoi(r.opt.Env.Get("SUPERVISOR_READY_TIMEOUT")); err == nil && v >= 0 {
		wait = v
	}
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = sv.Ready(cctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("supervisord did not answer on %s within %ds (%v): refusing to report services that it cannot run", sock, wait, err)
		}
		if serr := r.opt.Sleep(ctx, time.Second); serr != nil {
			return serr
		}
	}
	r.log.Info("Reloading supervisor configuration")
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ch, err := sv.Update(cctx)
	if err != nil {
		// Another program's broken .conf makes the reread fail; whether
		// ours were loaded is checked below all the same.
		r.log.Warn("supervisord reread/update: " + err.Error())
	} else {
		r.log.Info(fmt.Sprintf("supervisord: added %v, changed %v, removed %v", ch.Added, ch.Changed, ch.Removed))
	}
	var missing []string
	for _, s := range svcs {
		ok, err := sv.Known(cctx, s.Name)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, s.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("supervisord did not pick up: %s (the .conf files are written, but the programs are not loaded)", strings.Join(missing, ", "))
	}
	r.log.Info("Supervisor services registered")
	return nil
}

// AddPortalApp adds (or replaces) the app called name in portal.yaml at
// path, keeping everything else in the file; a missing file is created.
// The portal, watching the file, serves the new app without a restart.
func AddPortalApp(path, name string, s Service) error {
	var doc yaml.Node
	body, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := yaml.Unmarshal(body, &doc); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: not a mapping", path)
	}
	var apps *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "applications" {
			apps = root.Content[i+1]
		}
	}
	if apps == nil || apps.Kind != yaml.MappingNode {
		if apps == nil {
			apps = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "applications"}, apps)
		} else {
			*apps = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
	}
	var entry yaml.Node
	if err := entry.Encode(map[string]any{
		"hostname": "localhost", "external_port": s.ExternalPort, "internal_port": s.InternalPort,
		"open_path": orDefault(s.OpenPath, "/"), "name": name,
	}); err != nil {
		return err
	}
	replaced := false
	for i := 0; i+1 < len(apps.Content); i += 2 {
		if apps.Content[i].Value == name {
			apps.Content[i+1] = &entry
			replaced = true
		}
	}
	if !replaced {
		apps.Content = append(apps.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, &entry)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return portalconfig.WriteFileAtomic(path, out)
}
