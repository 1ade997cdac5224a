package provisioner

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/instanceportal/portal/provstatus"
)

func run1(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestGitReposReal clones two local repositories in parallel, checks out
// a tag, runs post_commands in the clone, and links a duplicate.
func TestGitReposReal(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	for _, name := range []string{"app", "lib"} {
		repo := filepath.Join(dir, "src", name)
		os.MkdirAll(repo, 0o755)
		run1(t, repo, "git", "init", "-q", "-b", "main")
		os.WriteFile(repo+"/VERSION", []byte("1\n"), 0o644)
		run1(t, repo, "git", "add", ".")
		run1(t, repo, "git", "commit", "-qm", "one")
		run1(t, repo, "git", "tag", "v1")
		os.WriteFile(repo+"/VERSION", []byte("2\n"), 0o644)
		run1(t, repo, "git", "commit", "-qam", "two")
	}
	body := fmt.Sprintf(`version: 1
git_repos:
  - url: file://%[1]s/src/app
    dest: %[1]s/ws/app
    ref: v1
    post_commands: ["cat VERSION > built"]
  - url: file://%[1]s/src/lib
    dest: %[1]s/ws/lib
  - url: file://%[1]s/src/lib
    dest: %[1]s/ws/lib-again
`, dir)
	res, out := testRun(t, dir, body, nil, nil)
	if res.Code != 0 {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	if b, _ := os.ReadFile(dir + "/ws/app/built"); string(b) != "1\n" {
		t.Errorf("app at v1 with post_commands: %q", b)
	}
	if b, _ := os.ReadFile(dir + "/ws/lib/VERSION"); string(b) != "2\n" {
		t.Errorf("lib: %q", b)
	}
	if l, err := os.Readlink(dir + "/ws/lib-again"); err != nil || l != dir+"/ws/lib" {
		t.Errorf("duplicate not linked: %q %v", l, err)
	}
	// A repository that does not exist fails the phase, named.
	res, _ = testRun(t, dir, "version: 1\non_failure: {max_retries: 1}\ngit_repos: [{url: \"file://"+dir+"/nope\", dest: \""+dir+"/ws/nope\"}]\n", nil, nil)
	if pe := (*PhaseError)(nil); res.Code != 1 || !errorsAs(res.Err, &pe) || pe.Phase != PhaseGit {
		t.Errorf("missing repo: %v", res.Err)
	}
}

// wheel builds a pure-Python wheel of name 1.0 whose module holds VALUE.
func wheel(t *testing.T, name string) []byte {
	t.Helper()
	var buf strings.Builder
	zw := zip.NewWriter(&nopWriter{&buf})
	var record strings.Builder
	add := func(path, body string) {
		w, err := zw.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
		sum := sha256.Sum256([]byte(body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", path, base64.RawURLEncoding.EncodeToString(sum[:]), len(body))
	}
	info := name + "-1.0.dist-info/"
	add(name+"/__init__.py", "VALUE = 'from-local-index'\n")
	add(info+"METADATA", "Metadata-Version: 2.1\nName: "+name+"\nVersion: 1.0\n")
	add(info+"WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
	record.WriteString(info + "RECORD,,\n")
	w, _ := zw.Create(info + "RECORD")
	io.WriteString(w, record.String())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return []byte(buf.String())
}

type nopWriter struct{ b *strings.Builder }

func (w *nopWriter) Write(p []byte) (int, error) { return w.b.Write(p) }

// TestPipPackagesReal installs a wheel the test builds, from a package
// index served on 127.0.0.1, into a venv the phase creates (pip, since
// uv is not installed here).
func TestPipPackagesReal(t *testing.T) {
	if exec.Command("python3", "-m", "venv", "--help").Run() != nil {
		t.Skip("python3 -m venv not available")
	}
	whl := wheel(t, "tinypkg")
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/simple/tinypkg/", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `<html><body><a href="/files/tinypkg-1.0-py3-none-any.whl">tinypkg-1.0-py3-none-any.whl</a></body></html>`)
	})
	mux.HandleFunc("/files/tinypkg-1.0-py3-none-any.whl", func(w http.ResponseWriter, r *http.Request) { w.Write(whl) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dir := t.TempDir()
	body := fmt.Sprintf(`version: 1
pip_packages:
  - venv: %s/venv
    tool: uv
    packages: [tinypkg]
    args: "--index-url %s/simple --disable-pip-version-check"
`, dir, srv.URL)
	res, out := testRun(t, dir, body, Env{"PIP_NO_INPUT": "1"}, func(o *Options) {
		o.LookPath = func(n string) (string, error) {
			if n == "uv" {
				return "", exec.ErrNotFound // the fallback is what is tested
			}
			return exec.LookPath(n)
		}
	})
	if res.Code != 0 {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	got, err := exec.Command(dir+"/venv/bin/python", "-c", "import tinypkg; print(tinypkg.VALUE)").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "from-local-index" {
		t.Errorf("import: %v %s\n%s", err, got, out)
	}
	if hits.Load() == 0 || !strings.Contains(out, "uv is not installed: using pip") {
		t.Errorf("index not used (%d) or no fallback note:\n%s", hits.Load(), out)
	}
}

// TestAptPackagesReal installs a small Debian package (sl, 13 kB) as
// root, through apt-get, and removes it afterwards.
func TestAptPackagesReal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("apt needs root")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("no apt-get")
	}
	if exec.Command("dpkg", "-s", "sl").Run() == nil {
		t.Skip("sl is installed already; the test would remove it")
	}
	defer exec.Command("apt-get", "remove", "-y", "-qq", "sl").Run()
	dir := t.TempDir()
	res, out := testRun(t, dir, "version: 1\napt_packages: [sl]\n", Env{}, nil)
	if res.Code != 0 {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	if err := exec.Command("dpkg", "-s", "sl").Run(); err != nil {
		t.Errorf("sl not installed: %v\n%s", err, out)
	}
}

// TestDownloadsPhaseReal: the downloads phase over package download,
// against a local server: a plain URL, a duplicate linked, progress
// published per file.
func TestDownloadsPhaseReal(t *testing.T) {
	payload := strings.Repeat("x", 100_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/f.bin" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "f.bin", srvTime, strings.NewReader(payload))
	}))
	defer srv.Close()
	dir := t.TempDir()
	body := fmt.Sprintf(`version: 1
downloads:
  - url: %[1]s/f.bin?sig=secret
    dest: %[2]s/models/a.bin
  - url: %[1]s/f.bin?sig=secret
    dest: %[2]s/models/b.bin
`, srv.URL, dir)
	res, out := testRun(t, dir, body, nil, nil)
	if res.Code != 0 {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	if b, _ := os.ReadFile(dir + "/models/a.bin"); len(b) != len(payload) {
		t.Errorf("a.bin: %d bytes", len(b))
	}
	if l, _ := os.Readlink(dir + "/models/b.bin"); l != dir+"/models/a.bin" {
		t.Errorf("b.bin not linked: %q", l)
	}
	st := readProgress(t, dir)
	if len(st.Downloads) != 1 || st.Downloads[0].State != provstatus.Done || st.Downloads[0].Bytes != int64(len(payload)) ||
		strings.Contains(st.Downloads[0].Source, "secret") {
		t.Errorf("progress downloads %+v", st.Downloads)
	}
	if strings.Contains(out, "sig=secret") {
		t.Errorf("query string logged:\n%s", out)
	}
}

var srvTime = mustTime("2026-01-02T03:04:05Z")

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
