package integration_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// The docs name repository paths, image paths, `caddy portal …` commands,
// make targets and HTTP endpoints. These tests check that each one exists,
// so that a doc cannot keep promising what the code no longer has (the
// issue that found "a processes API that does not exist yet" in two docs).

// docFiles are the Markdown files a user reads.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"../README.md", "../SECURITY.md"} {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	return files
}

// codeSpan matches `inline code` in Markdown (not fenced blocks, which hold
// sample output and configs).
var codeSpan = regexp.MustCompile("`([^`\n]+)`")

type docRef struct {
	file string
	text string
}

// docSpans returns every inline code span of the docs.
func docSpans(t *testing.T) []docRef {
	t.Helper()
	var out []docRef
	for _, f := range docFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inFence := false
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inFence = !inFence
				continue
			}
			if inFence {
				continue
			}
			for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
				out = append(out, docRef{filepath.Base(f), m[1]})
			}
		}
	}
	return out
}

// repoTopDirs are the repository's own top-level directories: a span that
// starts with one of them names a file of this repository.
var repoTopDirs = []string{"appstate/", "bench/", "caddymodules/", "cmd/", "confdecl/", "docs/", "examples/", "gpumetrics/",
	"integration_test/", "logstream/", "logtee/", "portalconfig/", "portallinks/", "rootfs/", "scripts/", "supervisor/", "tunnels/",
	"vastauth/", "web/", ".ci/"}

// generated are paths that builds create (git-ignored), named in the docs
// as outputs.
var generated = []string{"bench/bin", "bin", ".run", "bench/results", "integration_test/screenshots"}

func TestDocsNameExistingRepoPaths(t *testing.T) {
	for _, ref := range docSpans(t) {
		word := strings.Fields(ref.text)[0]
		word = strings.TrimPrefix(word, "./")
		isRepo := false
		for _, d := range repoTopDirs {
			isRepo = isRepo || strings.HasPrefix(word, d)
		}
		if !isRepo || strings.ContainsAny(word, "*<>{}$") {
			continue
		}
		p := strings.TrimSuffix(word, "/")
		if p, _, ok := strings.Cut(p, ":"); ok && p != "" {
			word = p // file:line
		}
		skip := false
		for _, g := range generated {
			skip = skip || p == g || strings.HasPrefix(p, g+"/")
		}
		if skip {
			continue
		}
		if _, err := os.Stat(filepath.Join("..", strings.TrimSuffix(word, "/"))); err != nil {
			t.Errorf("%s names `%s`, which is not in the repository", ref.file, ref.text)
		}
	}
}

// imageDirs are the image paths our rootfs provides; a doc naming a file
// under them promises the image has it.
var imageDirs = []string{"/opt/supervisor-scripts/", "/opt/instance-tools/", "/etc/supervisor/", "/usr/local/bin/"}

// imageBuilt are image paths the Dockerfile creates rather than copies.
var imageBuilt = map[string]bool{"/usr/local/bin/caddy": true, "/usr/local/bin/cloudflared": true}

func TestDocsNameExistingImagePaths(t *testing.T) {
	for _, ref := range docSpans(t) {
		word := strings.Fields(ref.text)[0]
		under := false
		for _, d := range imageDirs {
			under = under || strings.HasPrefix(word, d)
		}
		if !under || imageBuilt[word] || strings.ContainsAny(word, "*<>{}$") {
			continue
		}
		if _, err := os.Stat(filepath.Join("../rootfs", word)); err != nil {
			t.Errorf("%s names `%s`, which rootfs/ does not provide", ref.file, ref.text)
		}
	}
}

var (
	portalCommand = regexp.MustCompile(`^caddy portal ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?`)
	makeTarget    = regexp.MustCompile(`^make ([a-z][a-z-]*)$`)
)

func TestDocsNameExistingCommands(t *testing.T) {
	skipShort(t)
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for _, ref := range docSpans(t) {
		if m := makeTarget.FindStringSubmatch(ref.text); m != nil {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m[1]) + `:`).Match(makefile) {
				t.Errorf("%s names `%s`, but the Makefile has no target %q", ref.file, ref.text, m[1])
			}
			continue
		}
		m := portalCommand.FindStringSubmatch(ref.text)
		if m == nil {
			continue
		}
		args := []string{"portal", m[1]}
		if m[2] != "" {
			args = append(args, m[2])
		}
		key := strings.Join(args, " ")
		if checked[key] {
			continue
		}
		checked[key] = true
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, caddyBin, append(args, "--help")...).CombinedOutput()
		cancel()
		// cobra prints the parent's help for an unknown subcommand of a
		// command that has subcommands; a known one prints its own usage.
		if err != nil || !strings.Contains(string(out), "Usage:") || !strings.Contains(string(out), "caddy "+strings.Join(args, " ")) {
			t.Errorf("%s names `%s`, but `caddy %s --help` does not know it: %v\n%s", ref.file, ref.text, key, err, out)
		}
	}
}

// endpointSpan is an HTTP path of the portal's own server.
var endpointSpan = regexp.MustCompile(`^(?:(?:GET|POST|HEAD) )?(/(?:api/[A-Za-z0-9_./{}-]*|health|metrics))(?:[ ?].*)?$`)

func TestDocsNameExistingEndpoints(t *testing.T) {
	skipShort(t)
	internal := freePort(t)
	StartPortal(t, portalYAML(appYAML("Instance Portal", freePort(t), internal, "/")),
		PortalOptions{Env: map[string]string{"ENABLE_AUTH": "false"}})
	base := fmt.Sprintf("http://127.0.0.1:%d", internal)
	waitStatus(t, nil, base+"/health", 200)
	seen := map[string][]string{}
	for _, ref := range docSpans(t) {
		m := endpointSpan.FindStringSubmatch(ref.text)
		if m == nil {
			continue
		}
		p := strings.TrimSuffix(m[1], "/")
		// "/api/nope" is the docs' example of a path nothing serves.
		if p == "/api" || strings.Contains(p, "…") || strings.Contains(p, "nope") {
			continue
		}
		// {name}, {id}…: any value exercises the route.
		p = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(p, "x")
		seen[p] = append(seen[p], ref.file)
	}
	paths := make([]string, 0, len(seen))
	for p := range seen {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range paths {
		resp, err := client.Head(base + p)
		if err != nil {
			t.Errorf("%v name %s: %v", seen[p], p, err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		// Our APIs answer an unknown item with a JSON error; the dashboard's
		// file server answers a path no API claims with a bare 404.
		if resp.StatusCode == http.StatusNotFound && resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%v name %s, which no route of the portal serves (404 %q)", seen[p], p, body)
		}
	}
	if len(paths) < 5 {
		t.Errorf("found only %d endpoints in the docs: the scan is broken", len(paths))
	}
}

// testNameRE matches a Go test or fuzz target's name as docs cite it
// (SECURITY.md names the test that holds each promise).
var testNameRE = regexp.MustCompile(`\b(?:Test|Fuzz)[A-Z][A-Za-z0-9_]*`)

// testFuncRE matches a test or fuzz target's declaration.
var testFuncRE = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Z][A-Za-z0-9_]*)\(`)

// TestDocsNameExistingTests: every Test…/Fuzz… name a doc cites is
// declared in some _test.go file of the tree, so a renamed or removed test
// cannot go on holding a documented promise.
func TestDocsNameExistingTests(t *testing.T) {
	declared := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range testFuncRE.FindAllStringSubmatch(string(src), -1) {
			declared[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(declared) < 100 {
		t.Fatalf("only %d tests found in the tree: the walk is broken", len(declared))
	}
	for _, f := range docFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		seen := map[string]bool{}
		for _, loc := range testNameRE.FindAllStringIndex(text, -1) {
			name := text[loc[0]:loc[1]]
			if loc[0] > 0 && text[loc[0]-1] == '.' {
				continue // a package's function (fstest.TestFS), not a test of ours
			}
			found := declared[name]
			if loc[1] < len(text) && text[loc[1]] == '*' { // a family: TestLimiter*
				for d := range declared {
					found = found || strings.HasPrefix(d, name)
				}
				name += "*"
			}
			if !found && !seen[name] {
				seen[name] = true
				t.Errorf("%s cites %s, which no _test.go file declares", filepath.Base(f), name)
			}
		}
	}
}
