package provisioner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/provstatus"
)

// noSleep makes retry delays instant.
func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// testRun runs a manifest body with a fresh state dir under dir.
func testRun(t *testing.T, dir, body string, e Env, mod func(*Options)) (Result, string) {
	t.Helper()
	m := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(m, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if e == nil {
		e = Env{}
	}
	e["PATH"] = os.Getenv("PATH")
	e[EnvLogFile] = filepath.Join(dir, "provisioning.log")
	if _, ok := e["PROVISIONER_STATE_DIR"]; !ok {
		e["PROVISIONER_STATE_DIR"] = filepath.Join(dir, "state")
	}
	var out bytes.Buffer
	opt := Options{Source: m, Env: e, Out: &out, Sleep: noSleep, Root: dir}
	if mod != nil {
		mod(&opt)
	}
	res := Run(context.Background(), opt)
	return res, out.String()
}

func readProgress(t *testing.T, dir string) provstatus.Status {
	t.Helper()
	s, err := provstatus.Read(provstatus.Path(filepath.Join(dir, "state")))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func phaseStates(s provstatus.Status) map[string]string {
	out := map[string]string{}
	for _, p := range s.Phases {
		out[p.Name] = p.State
	}
	return out
}

// TestIdempotence: a rerun skips the phases whose content is unchanged,
// a changed phase reruns, --force reruns all; progress says which.
func TestIdempotence(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	body := `version: 1
write_files:
  - path: ` + dir + `/etc/app.conf
    content: "port=1\n"
    permissions: "0600"
post_commands:
  - echo run >> ` + count + `
`
	res, out := testRun(t, dir, body, nil, nil)
	if res.Code != 0 {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	if fi, err := os.Stat(dir + "/etc/app.conf"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("write_files: %v %v", fi, err)
	}
	st := readProgress(t, dir)
	if st.State != provstatus.Done || phaseStates(st)[PhasePostCommands] != provstatus.Done || st.FinishedAt == nil {
		t.Errorf("progress after the first run: %+v", st)
	}
	res, out = testRun(t, dir, body, nil, nil)
	if res.Code != 0 || !strings.Contains(out, "Post commands unchanged, skipping") || !strings.Contains(out, "Early files unchanged, skipping") {
		t.Fatalf("second run did not skip:\n%s", out)
	}
	if ps := phaseStates(readProgress(t, dir)); ps[PhasePostCommands] != provstatus.Skipped {
		t.Errorf("progress after the rerun: %v", ps)
	}
	res, _ = testRun(t, dir, strings.Replace(body, "echo run", "echo changed", 1), nil, nil)
	if res.Code != 0 {
		t.Fatal(res.Err)
	}
	res, out = testRun(t, dir, body, nil, func(o *Options) { o.Force = true })
	if res.Code != 0 || strings.Contains(out, "unchanged, skipping") {
		t.Fatalf("--force skipped something:\n%s", out)
	}
	if b, _ := os.ReadFile(count); string(b) != "run\nchanged\nrun\n" {
		t.Errorf("post_commands ran %q, want run, changed, run", b)
	}
	// A dry run neither reads nor writes state, nor publishes progress.
	before, _ := os.ReadFile(provstatus.Path(filepath.Join(dir, "state")))
	res, out = testRun(t, dir, body, nil, func(o *Options) { o.DryRun = true })
	after, _ := os.ReadFile(provstatus.Path(filepath.Join(dir, "state")))
	if res.Code != 0 || !strings.Contains(out, "[DRY RUN] Would run: echo run") || !bytes.Equal(before, after) {
		t.Errorf("dry run: %v\n%s", res.Err, out)
	}
}

// TestForceRefusesForeignDir: --force never clears a directory the
// provisioner did not create, exits 78 and retries nothing.
func TestForceRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "foreign")
	os.MkdirAll(state, 0o755)
	os.WriteFile(filepath.Join(state, "important.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(state, "apt.hash"), []byte("x"), 0o644)
	res, out := testRun(t, dir, "version: 1\non_failure: {max_retries: 3}\n", Env{"PROVISIONER_STATE_DIR": state},
		func(o *Options) { o.Force = true })
	if res.Code != ExitConfigRefused || strings.Contains(out, "retrying") {
		t.Fatalf("code %d:\n%s", res.Code, out)
	}
	if _, err := os.Stat(filepath.Join(state, "apt.hash")); err != nil {
		t.Error("a foreign directory lost a file")
	}
	// One the provisioner made is cleared (hash files only).
	own := filepath.Join(dir, "own")
	s := State{Dir: own}
	if err := s.Mark("apt", "h"); err != nil || !s.Done("apt", "h") {
		t.Fatal(err)
	}
	if err := s.Clear(); err != nil || s.Done("apt", "h") {
		t.Fatalf("clear: %v", err)
	}
	if d, w := StateDir(Env{"PROVISIONER_STATE_DIR": "/etc"}); d != provstatus.DefaultStateDir || w == "" {
		t.Errorf("/etc accepted: %q %q", d, w)
	}
	if d, w := StateDir(Env{"PROVISIONER_STATE_DIR": "rel/dir"}); d != provstatus.DefaultStateDir || w == "" {
		t.Errorf("relative accepted: %q %q", d, w)
	}
}

type hookServer struct {
	mu   sync.Mutex
	reqs []string // METHOD path auth body
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.reqs = append(h.reqs, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(b))
	h.mu.Unlock()
}

func (h *hookServer) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.reqs...)
}

// TestOnFailure: the run is retried max_retries times in all, then the
// webhook hears of it and the stop action calls the console once per
// instance (the sentinel), with the key only in a header.
func TestOnFailure(t *testing.T) {
	dir := t.TempDir()
	hooks := &hookServer{}
	srv := httptest.NewServer(hooks)
	defer srv.Close()
	count := filepath.Join(dir, "tries")
	body := `version: 1
on_failure:
  action: stop
  max_retries: 2
  retry_delay: 0
  webhook: ` + srv.URL + `/hook?token=secret
post_commands:
  - echo try >> ` + count + `; exit 3
`
	e := Env{"CONTAINER_ID": "77", "CONTAINER_API_KEY": "key-123"}
	mod := func(o *Options) { o.ConsoleAPI = srv.URL }
	res, out := testRun(t, dir, body, e, mod)
	if res.Code != ExitFailed {
		t.Fatalf("code %d\n%s", res.Code, out)
	}
	var pe *PhaseError
	if !errorsAs(res.Err, &pe) || pe.Phase != PhasePostCommands {
		t.Errorf("error %v", res.Err)
	}
	if b, _ := os.ReadFile(count); string(b) != "try\ntry\n" {
		t.Errorf("attempts %q, want two", b)
	}
	reqs := hooks.got()
	if len(reqs) != 2 || !strings.HasPrefix(reqs[0], "POST /hook  {") || reqs[1] != `PUT /api/v0/instances/77/ Bearer key-123 {"state":"stopped"}` {
		t.Fatalf("requests %q", reqs)
	}
	var p WebhookPayload
	json.Unmarshal([]byte(strings.SplitN(reqs[0], " ", 4)[3]), &p)
	if p.Action != "stop" || p.ContainerID != "77" || p.Error != "provisioning failed after all retries" {
		t.Errorf("payload %+v", p)
	}
	if strings.Contains(out, "key-123") || strings.Contains(out, "secret") {
		t.Errorf("a secret was logged:\n%s", out)
	}
	st := readProgress(t, dir)
	if st.State != provstatus.Failed || st.FailedPhase != PhasePostCommands || !strings.Contains(st.Error, "exit 3") {
		t.Errorf("progress %+v", st)
	}
	// The next failure does not stop the instance again.
	res, out = testRun(t, dir, body, e, mod)
	if res.Code != ExitFailed || !strings.Contains(out, "already stopped by provisioner") || len(hooks.got()) != 3 {
		t.Errorf("second failure: %q\n%s", hooks.got(), out)
	}
}

func errorsAs(err error, target **PhaseError) bool { return errors.As(err, target) }

// TestScriptPhase: PROVISIONING_SCRIPT from a URL (CRLF endings removed)
// runs last, after the manifest; script-only mode runs it alone.
func TestScriptPhase(t *testing.T) {
	dir := t.TempDir()
	mux := http.NewServeMux()
	mux.HandleFunc("/setup.sh", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "#!/bin/sh\r\necho script-ran >> "+dir+"/order\r\n")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	e := Env{EnvScript: srv.URL + "/setup.sh?sig=abc"}
	res, out := testRun(t, dir, "version: 1\npost_commands: [\"echo post >> "+dir+"/order\"]\n", e, nil)
	if res.Code != 0 {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	if b, _ := os.ReadFile(dir + "/order"); string(b) != "post\nscript-ran\n" {
		t.Errorf("order %q", b)
	}
	if strings.Contains(out, "sig=abc") {
		t.Errorf("query string logged:\n%s", out)
	}
	os.Remove(dir + "/order")
	res, out = Run(context.Background(), Options{Env: Env{EnvScript: srv.URL + "/setup.sh", "PROVISIONER_STATE_DIR": dir + "/s2",
		EnvLogFile: ""}, Root: dir, Sleep: noSleep}), ""
	if res.Code != 0 {
		t.Fatalf("script-only: %v %s", res.Err, out)
	}
	if b, _ := os.ReadFile(dir + "/order"); string(b) != "script-ran\n" {
		t.Errorf("script-only order %q", b)
	}
	if res := Run(context.Background(), Options{Env: Env{}}); res.Code != 0 {
		t.Errorf("nothing to do: %v", res.Err)
	}
}

// recorder is a Runner that records commands and runs none.
type recorder struct {
	mu   sync.Mutex
	cmds []string
}

func (r *recorder) Run(_ context.Context, c Command, _ func(string)) error {
	r.mu.Lock()
	r.cmds = append(r.cmds, c.String())
	r.mu.Unlock()
	return nil
}

// TestCommandConstruction: the argv of apt, pip (uv present or not,
// system, new venvs) and conda (which Debian does not package, so only its
// commands are checked here).
func TestCommandConstruction(t *testing.T) {
	exists := func(p string) bool { return p == "/venv/main" || p == "/opt/env" }
	for _, c := range []struct {
		name string
		b    PipBlock
		uv   string
		want []string
	}{
		{"uv default", PipBlock{Tool: "uv", Packages: []string{"torch"}, Args: "--torch-backend auto"}, "/bin/uv",
			[]string{"/bin/uv pip install --no-cache --python /venv/main/bin/python --torch-backend auto torch"}},
		{"uv missing", PipBlock{Tool: "uv", Packages: []string{"a"}}, "",
			[]string{"/venv/main/bin/python -m pip install --no-cache-dir a"}},
		{"system uv", PipBlock{Tool: "uv", Venv: "system", Packages: []string{"a"}, Requirements: []string{"/r.txt"}}, "/bin/uv",
			[]string{"/bin/uv pip install --no-cache --python python3 --system --break-system-packages a",
				"/bin/uv pip install --no-cache --python python3 --system --break-system-packages -r /r.txt"}},
		{"new venv pip", PipBlock{Tool: "pip", Venv: "/venv/new", Python: "3.11", Packages: []string{"b"}, Args: "'--index-url' http://x/simple"}, "",
			[]string{"python3.11 -m venv /venv/new", "/venv/new/bin/python -m pip install --no-cache-dir --index-url http://x/simple b"}},
		{"new venv uv", PipBlock{Tool: "uv", Venv: "/venv/new", Packages: []string{"b"}}, "/bin/uv",
			[]string{"/bin/uv venv /venv/new", "/bin/uv pip install --no-cache --python /venv/new/bin/python b"}},
	} {
		var got []string
		for _, cmd := range PipCommands(c.b, "/venv/main", c.uv, exists) {
			got = append(got, cmd.String())
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
	var got []string
	for _, cmd := range CondaCommands(CondaBlock{Packages: []string{"cudatoolkit=11.8"}, Channels: []string{"conda-forge", "nvidia"},
		Env: "/venv/conda-ml", Python: "3.11", Args: "--no-update-deps"}, "/venv/main", "/opt/miniforge3/bin/mamba", exists) {
		got = append(got, cmd.String())
	}
	want := []string{"/opt/miniforge3/bin/mamba create -y -p /venv/conda-ml python=3.11",
		"/opt/miniforge3/bin/mamba install -y -p /venv/conda-ml -c conda-forge -c nvidia --no-update-deps cudatoolkit=11.8"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("conda:\n got %q\nwant %q", got, want)
	}
	// Through a run: the conda tool is found under Root's /opt/miniforge3.
	dir := t.TempDir()
	os.MkdirAll(dir+"/opt/miniforge3/bin", 0o755)
	os.WriteFile(dir+"/opt/miniforge3/bin/conda", []byte("#!/bin/sh\n"), 0o755)
	rec := &recorder{}
	res, out := testRun(t, dir, "version: 1\napt_packages: [cowsay]\nconda_packages: {packages: [numpy]}\n", nil,
		func(o *Options) { o.Runner = rec })
	if res.Code != 0 {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	want = []string{"apt-get update -qq", "apt-get install -y -qq --no-install-recommends -- cowsay",
		dir + "/opt/miniforge3/bin/conda create -y -p /venv/main", dir + "/opt/miniforge3/bin/conda install -y -p /venv/main numpy"}
	if !reflect.DeepEqual(rec.cmds, want) {
		t.Errorf("run:\n got %q\nwant %q", rec.cmds, want)
	}
}

func TestDedup(t *testing.T) {
	u, l := DedupDownloads([]Download{{"u1", "/a"}, {"u1", "/a"}, {"u1", "/b"}, {"u2", "/d/"}, {"u2", "/d/"}, {"u3", ""}})
	if len(u) != 4 || len(l) != 1 || l[0] != [2]string{"/a", "/b"} {
		t.Errorf("downloads %v %v", u, l)
	}
	g, gl := DedupGitRepos([]GitRepo{
		{URL: "r1", Dest: "/x"},
		{URL: "r2", Dest: "/x", Ref: "v/1"},
		{URL: "r1", Dest: "/y"},
		{URL: "r1", Dest: "/z", PostCommands: []string{"make"}},
		{URL: "r1", Dest: "/x", PostCommands: []string{"pip"}},
	})
	var dests []string
	for _, r := range g {
		dests = append(dests, r.Dest)
	}
	if strings.Join(dests, ",") != "/x,/x--v-1,/z" || len(gl.pairs) != 1 || gl.pairs[0] != [2]string{"/x", "/y"} || g[0].PostCommands[0] != "pip" {
		t.Errorf("git %v %v", g, gl)
	}
}

// TestExecRunner: output is streamed line by line ('\r' too), and a
// cancel ends the whole process group.
func TestExecRunner(t *testing.T) {
	var lines []string
	err := ExecRunner{}.Run(context.Background(), Command{Shell: `printf 'a\rb\nc\n'; echo err >&2; exit 4`}, func(s string) { lines = append(lines, s) })
	var ee *ExitError
	if !asExit(err, &ee) || ee.Code != 4 {
		t.Fatalf("err %v", err)
	}
	if strings.Join(lines, ",") != "a,b,c,err" {
		t.Errorf("lines %q", lines)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ExecRunner{KillDelay: time.Second}.Run(ctx, Command{Shell: "sleep 60 & echo $! > " + dir + "/pid; wait"}, nil)
	}()
	var pid []byte
	testwait.Poll(10*time.Second, 0, func() bool {
		pid, _ = os.ReadFile(dir + "/pid")
		return len(pid) > 0
	})
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("err %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("cancel did not end the command")
	}
	p := strings.TrimSpace(string(pid))
	if !testwait.Poll(5*time.Second, 50*time.Millisecond, func() bool {
		_, err := os.Stat("/proc/" + p)
		return err != nil
	}) {
		t.Errorf("grandchild %s survived the cancel", p)
	}
}

func asExit(err error, target **ExitError) bool {
	e, ok := err.(*ExitError)
	*target = e
	return ok
}

// TestExecRunnerLeavesDaemons: a program a command starts in the
// background and that keeps the output pipe does not hang the phase, and
// is left running.
func TestExecRunnerLeavesDaemons(t *testing.T) {
	dir := t.TempDir()
	err := ExecRunner{}.Run(context.Background(), Command{Shell: "sleep 30 & echo $! > " + dir + "/pid; echo started"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := os.ReadFile(dir + "/pid")
	p := strings.TrimSpace(string(pid))
	if _, err := os.Stat("/proc/" + p); err != nil {
		t.Errorf("the background program %s was killed", p)
	}
	exec.Command("kill", p).Run()
}

// TestSecretsMasked: the token variables' values never reach the log, the
// progress document or the result, even when a command prints them.
func TestSecretsMasked(t *testing.T) {
	const tok = "hf_abcdef123456"
	t.Setenv("HF_TOKEN", tok)
	dir := t.TempDir()
	res, out := testRun(t, dir, "version: 1\non_failure: {max_retries: 1}\npost_commands:\n  - echo token=$HF_TOKEN; exit 9 # "+tok+"\n",
		Env{"HF_TOKEN": tok}, nil)
	if res.Code != 1 || !strings.Contains(out, "token=…") {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "provisioning.log"))
	prog, _ := os.ReadFile(provstatus.Path(filepath.Join(dir, "state")))
	for what, text := range map[string]string{"stdout": out, "log file": string(log), "progress": string(prog), "result": res.Err.Error()} {
		if strings.Contains(text, tok) {
			t.Errorf("the token is in the %s:\n%s", what, text)
		}
	}
	var pe *PhaseError
	if !errors.As(res.Err, &pe) || pe.Phase != PhasePostCommands {
		t.Errorf("the masked error lost its phase: %v", res.Err)
	}
}

// TestRefusalPublished: a malformed manifest runs nothing and the progress
// says why, with the line.
func TestRefusalPublished(t *testing.T) {
	dir := t.TempDir()
	res, out := testRun(t, dir, "version: 1\npost_commands: [\"touch "+dir+"/ran\"]\napt_packages: x\n", nil, nil)
	if res.Code != 1 || !strings.Contains(out, "m.yaml:3: apt_packages: want a list of strings") {
		t.Fatalf("%v\n%s", res.Err, out)
	}
	if _, err := os.Stat(dir + "/ran"); err == nil {
		t.Error("a phase ran from a refused manifest")
	}
	st := readProgress(t, dir)
	if st.State != provstatus.Failed || st.FailedPhase != PhaseManifest || !strings.Contains(st.Error, "m.yaml:3: apt_packages") {
		t.Errorf("progress %+v", st)
	}
}

// TestStateDirWithRequests: a state directory the portal made first (for
// an agent's request manifests) is still ours for --force.
func TestStateDirWithRequests(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(filepath.Join(dir, "requests"), 0o700)
	os.WriteFile(filepath.Join(dir, "requests", "m.yaml"), []byte("version: 1\n"), 0o600)
	s := State{Dir: dir}
	if err := s.Mark("apt", "h"); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(); err != nil || s.Done("apt", "h") {
		t.Fatalf("clear: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "requests", "m.yaml")); err != nil {
		t.Error("--force removed a request manifest")
	}
}
