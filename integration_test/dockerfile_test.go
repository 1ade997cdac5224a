package integration_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/instanceportal/portal/shellwords"
)

// dfInstr is one Dockerfile instruction, continuation lines joined and
// comment lines inside it dropped (as Docker does).
type dfInstr struct {
	Cmd   string // upper case: FROM, RUN, COPY...
	Args  string
	Line  int
	Stage int    // 0 before the first FROM, then 1, 2...
	Needs string // "image-test: needs X" written above it: what the image test cannot reach
}

// parseDockerfile splits a Dockerfile into instructions.
func parseDockerfile(text string) []dfInstr {
	var out []dfInstr
	stage := 0
	needs := ""
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if n, ok := strings.CutPrefix(line, "# image-test: needs "); ok {
				needs = n
			}
			continue
		}
		start := i + 1
		full := line
		for strings.HasSuffix(full, `\`) && i+1 < len(lines) {
			full = strings.TrimSuffix(full, `\`)
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				full += `\` // a comment line inside an instruction is dropped
				continue
			}
			full += " " + next
		}
		cmd, args, _ := strings.Cut(full, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		in := dfInstr{Cmd: cmd, Args: strings.TrimSpace(args), Line: start, Stage: stage}
		if cmd == "RUN" {
			in.Needs, needs = needs, ""
		}
		out = append(out, in)
	}
	return out
}

// expandVars replaces $NAME and ${NAME} from vars (unknown names stay).
func expandVars(s string, vars map[string]string) string {
	return regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`).ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := vars[name]; ok {
			return v
		}
		return m
	})
}

func readDockerfile(t *testing.T) []dfInstr {
	t.Helper()
	b, err := os.ReadFile("../xcaddy.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return parseDockerfile(string(b))
}

// finalStage returns the instructions of the last stage.
func finalStage(instrs []dfInstr) []dfInstr {
	last := instrs[len(instrs)-1].Stage
	var out []dfInstr
	for _, in := range instrs {
		if in.Stage == last {
			out = append(out, in)
		}
	}
	return out
}

// runtimePackages is the final stage's apt-get install list.
func runtimePackages(t *testing.T, instrs []dfInstr) []string {
	t.Helper()
	for _, in := range finalStage(instrs) {
		if in.Cmd != "RUN" || !strings.Contains(in.Args, "apt-get install") {
			continue
		}
		_, rest, _ := strings.Cut(in.Args, "--no-install-recommends")
		list, _, _ := strings.Cut(rest, "&&")
		return strings.Fields(list)
	}
	t.Fatal("no apt-get install in the runtime stage")
	return nil
}

// xcaddyCommand extracts "xcaddy build VERSION --with MODULE=." from text.
var xcaddyCommand = regexp.MustCompile(`xcaddy build \S+ --with \S+`)

// TestDockerfileStatic checks what can be checked without building: COPY
// sources and every path the image's scripts and programs name exist in the
// repository, every build argument is used, the xcaddy command is the
// README's (with cgo on, also in `make xcaddy`), the tools the image must
// carry are installed, and nothing needs openssl at run time.
func TestDockerfileStatic(t *testing.T) {
	instrs := readDockerfile(t)
	repo, _ := filepath.Abs("..")

	// COPY sources (without --from) exist in the build context.
	for _, in := range instrs {
		if in.Cmd != "COPY" || strings.Contains(in.Args, "--from=") {
			continue
		}
		words := strings.Fields(in.Args)
		for _, src := range words[:len(words)-1] {
			if strings.HasPrefix(src, "--") {
				continue
			}
			if _, err := os.Stat(filepath.Join(repo, src)); err != nil {
				t.Errorf("line %d: COPY source %s: %v", in.Line, src, err)
			}
		}
	}

	// Every ARG is used after its declaration (FROM lines use global ones).
	for i, in := range instrs {
		if in.Cmd != "ARG" {
			continue
		}
		name, _, _ := strings.Cut(in.Args, "=")
		used := false
		ref := regexp.MustCompile(`\$\{?` + regexp.QuoteMeta(name) + `\b`)
		for _, later := range instrs[i+1:] {
			if (later.Stage == in.Stage || in.Stage == 0 && later.Cmd == "FROM") && ref.MatchString(later.Args) {
				used = true
			}
		}
		if !used {
			t.Errorf("line %d: build argument %s is never used", in.Line, name)
		}
	}

	// The xcaddy command: the README's, with CGO_ENABLED=1 beside it, in
	// the Dockerfile (cgo on in the builder's ENV) and in `make xcaddy`.
	readme, _ := os.ReadFile("../README.md")
	makefile, _ := os.ReadFile("../Makefile")
	dockerfile, _ := os.ReadFile("../xcaddy.Dockerfile")
	readmeLine := ""
	for _, l := range strings.Split(string(readme), "\n") {
		if xcaddyCommand.MatchString(l) {
			readmeLine = l
			break
		}
	}
	if readmeLine == "" {
		t.Fatal("README.md has no xcaddy build command")
	}
	if !strings.HasPrefix(strings.TrimSpace(readmeLine), "CGO_ENABLED=1 ") {
		t.Errorf("README's xcaddy command %q does not set CGO_ENABLED=1 (xcaddy turns cgo off: no NVML)", readmeLine)
	}
	want := xcaddyCommand.FindString(readmeLine)
	if got := xcaddyCommand.FindString(string(dockerfile)); got != want {
		t.Errorf("Dockerfile runs %q, README says %q", got, want)
	}
	if !strings.Contains(string(dockerfile), "ENV CGO_ENABLED=1") {
		t.Error("the Dockerfile's builder does not set CGO_ENABLED=1")
	}
	mk := string(makefile)
	if !strings.Contains(mk, "BUILD_ENV   = CGO_ENABLED=1") || !regexp.MustCompile(`(?m)^xcaddy:\n\t\$\(BUILD_ENV\) `).MatchString(mk) {
		t.Error("`make xcaddy` does not build with CGO_ENABLED=1")
	}
	if !strings.Contains(mk, "build v2.11.9 --output $(BIN) \\\n\t\t--with github.com/instanceportal/portal@v0.0.0-00010101000000-000000000000=.") {
		t.Error("`make xcaddy` does not run the README's command")
	}

	// Paths the image's scripts, programs and Dockerfile name that ship in
	// rootfs/ exist there (globs must match something).
	shipped := regexp.MustCompile(`(/opt/(?:supervisor-scripts|instance-tools)|/etc/(?:supervisor|profile\.d)|/usr/local/bin/log-tee)[A-Za-z0-9_./*-]*`)
	var sources []string
	for _, pattern := range []string{"rootfs/opt/supervisor-scripts/*.sh", "rootfs/opt/supervisor-scripts/utils/*.sh",
		"rootfs/opt/instance-tools/bin/*", "rootfs/etc/supervisor/*.conf", "rootfs/etc/supervisor/conf.d/*.conf", "rootfs/usr/local/bin/*", "xcaddy.Dockerfile"} {
		m, _ := filepath.Glob(filepath.Join(repo, pattern))
		sources = append(sources, m...)
	}
	checked := 0
	for _, src := range sources {
		body, _ := os.ReadFile(src)
		for _, p := range shipped.FindAllString(string(body), -1) {
			p = strings.TrimRight(p, ".")
			if strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/utils") {
				p = strings.TrimSuffix(p, "/")
			}
			m, _ := filepath.Glob(filepath.Join(repo, "rootfs", p))
			if len(m) == 0 {
				t.Errorf("%s names %s, which is not in rootfs/", strings.TrimPrefix(src, repo+"/"), p)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Errorf("only %d shipped paths found: the pattern is broken", checked)
	}

	// Every program's command exists and is executable in git; every
	// wrapper has a program; every util a wrapper sources exists.
	confs, _ := filepath.Glob(filepath.Join(repo, "rootfs/etc/supervisor/conf.d/*.conf"))
	commandRe := regexp.MustCompile(`(?m)^command=%\(ENV_PORTAL_ROOT\)s(\S+)$`)
	programs := map[string]bool{}
	for _, c := range confs {
		body, _ := os.ReadFile(c)
		m := commandRe.FindStringSubmatch(string(body))
		if m == nil {
			t.Errorf("%s: no command=%%(ENV_PORTAL_ROOT)s/... line", filepath.Base(c))
			continue
		}
		programs[m[1]] = true
		if !strings.Contains(string(body), `environment=PROC_NAME="%(program_name)s"`) {
			t.Errorf("%s does not set PROC_NAME for the utils", filepath.Base(c))
		}
	}
	wrappers, _ := filepath.Glob(filepath.Join(repo, "rootfs/opt/supervisor-scripts/*.sh"))
	for _, w := range wrappers {
		rel := strings.TrimPrefix(w, filepath.Join(repo, "rootfs"))
		if !programs[rel] {
			t.Errorf("%s has no supervisor program", rel)
		}
		body, _ := os.ReadFile(w)
		for _, m := range regexp.MustCompile(`\. "\$\{utils\}/([\w.]+)"`).FindAllStringSubmatch(string(body), -1) {
			if _, err := os.Stat(filepath.Join(repo, "rootfs/opt/supervisor-scripts/utils", m[1])); err != nil {
				t.Errorf("%s sources utils/%s: %v", rel, m[1], err)
			}
		}
	}
	for p := range programs {
		out, err := exec.Command("git", "-C", repo, "ls-files", "-s", "rootfs"+p).Output()
		if err != nil || !strings.HasPrefix(string(out), "100755") {
			t.Errorf("rootfs%s is not executable in git (%q)", p, out)
		}
	}

	// What the image must carry, named in the Dockerfile.
	df := string(dockerfile)
	pkgs := runtimePackages(t, instrs)
	for _, p := range []string{"supervisor", "cron", "syncthing", "ca-certificates", "curl", "ocl-icd-libopencl1", "python3",
		// the reference's everyday tools (issue 17; docs/boot.md, "Tools")
		"wget", "jq", "git-lfs", "sudo", "iproute2", "iputils-ping", "netcat-traditional", "dnsutils",
		"rsync", "rclone", "tmux", "zip", "unzip", "less", "nano", "vim"} {
		if !contains(pkgs, p) {
			t.Errorf("runtime packages %v lack %s", pkgs, p)
		}
	}
	if contains(pkgs, "openssl") {
		t.Error("the runtime installs openssl; the certificate is made in Go")
	}
	for what, needle := range map[string]string{
		"BASE_IMAGE build argument":         "FROM ${BASE_IMAGE}",
		"PYTHON_VERSION for /venv/main":     `uv venv --seed --python "${PYTHON_VERSION}" /venv/main`,
		"Jupyter, TensorBoard, vastai CLI":  "jupyter tensorboard vastai",
		"NVM with the Node LTS":             "nvm install --lts",
		"the non-root user":                 "useradd -m -s /bin/bash -u 1001 -g 0 user",
		"cloudflared pinned":                "ARG CLOUDFLARED_VERSION=",
		"cloudflared checked (amd64)":       "ARG CLOUDFLARED_SHA256_AMD64=",
		"cloudflared checked (arm64)":       "arm64) sum=\"${CLOUDFLARED_SHA256_ARM64}\"",
		"the checksum verified":             "sha256sum -c -",
		"a builder on the build platform":   "FROM --platform=$BUILDPLATFORM",
		"cross-compiling for TARGETARCH":    "GOARCH=$TARGETARCH",
		"NVML warnings silenced (cgo only)": "CGO_CFLAGS=-Wno-deprecated-declarations",
	} {
		if !strings.Contains(df, needle) {
			t.Errorf("Dockerfile: %s: no %q", what, needle)
		}
	}
	for _, arch := range []string{"AMD64", "ARM64"} {
		if !regexp.MustCompile(`(?m)^ARG CLOUDFLARED_SHA256_` + arch + `=[0-9a-f]{64}$`).MatchString(df) {
			t.Errorf("Dockerfile: no pinned sha256 for cloudflared on %s", arch)
		}
	}
	scripts, _ := filepath.Glob(filepath.Join(repo, "rootfs/opt/*/*.sh"))
	more, _ := filepath.Glob(filepath.Join(repo, "rootfs/opt/*/*/*.sh"))
	for _, s := range append(scripts, more...) {
		if body, _ := os.ReadFile(s); regexp.MustCompile(`(?m)^[^#]*\bopenssl\b`).Match(body) {
			t.Errorf("%s calls openssl, which the image does not install", s)
		}
	}
	var needs []string
	for _, in := range finalStage(instrs) {
		if in.Needs != "" {
			needs = append(needs, in.Needs)
		}
	}
	sort.Strings(needs)
	if len(needs) != 3 {
		t.Errorf("steps marked as needing a registry: %q, want uv/PyPI, NVM and cloudflared", needs)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestParseDockerfile(t *testing.T) {
	instrs := parseDockerfile("ARG A=1\n# c\nFROM x AS b\nRUN a \\\n  # inner comment\n  && b \\\n  c\n# image-test: needs the web\nRUN d\nENV K=\"v w\" L=x\\ y\n")
	var got []string
	for _, in := range instrs {
		got = append(got, in.Cmd+"|"+in.Args+"|"+in.Needs)
	}
	want := []string{"ARG|A=1|", "FROM|x AS b|", "RUN|a  && b  c|", "RUN|d|the web", `ENV|K="v w" L=x\ y|`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if w := shellwords.Split(instrs[4].Args); strings.Join(w, "|") != "K=v w|L=x y" {
		t.Fatalf("words %q", w)
	}
}
