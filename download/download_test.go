package download

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/instanceportal/portal/internal/testwait"
	"github.com/instanceportal/portal/provstatus"
)

const (
	hfToken      = "hf_SECRETTOKEN"
	civitaiToken = "civ_SECRETTOKEN"
)

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed + byte(i>>11)
	}
	return b
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// hubFile is one file of the stand-in hub.
type hubFile struct {
	data []byte
	lfs  bool   // served from the "CDN" with X-Linked-Etag = sha256
	lie  string // a wrong sha256 to announce, for the mismatch test
}

// fakeHub stands in for the Hugging Face hub (reached through HF_ENDPOINT):
// the resolve URLs with the hub's headers, the repository listing, and
// LFS files redirected to a storage host that refuses any Authorization
// header. Every request without "Bearer hfToken" is refused with 401.
type fakeHub struct {
	t      *testing.T
	hub    *httptest.Server
	cdn    *httptest.Server
	commit string
	files  map[string]hubFile // "org/name/path" -> file
	mu     sync.Mutex
	log    []string // method path auth-present, for assertions
}

func newFakeHub(t *testing.T, files map[string]hubFile) *fakeHub {
	h := &fakeHub{t: t, commit: strings.Repeat("c0ffee", 6) + "abcd", files: files}
	h.cdn = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.note(r)
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "the storage refuses Authorization", http.StatusBadRequest)
			return
		}
		f, ok := h.files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(f.data))
	}))
	h.hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	t.Cleanup(h.cdn.Close)
	t.Cleanup(h.hub.Close)
	return h
}

func (h *fakeHub) note(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, fmt.Sprintf("%s %s%s auth=%v", r.Method, r.Host, r.URL.Path, r.Header.Get("Authorization") != ""))
}

func (h *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.note(r)
	if r.Header.Get("Authorization") != "Bearer "+hfToken {
		http.Error(w, "Invalid credentials", http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, "/api/models/"); ok {
		repo, _, ok := strings.Cut(rest, "/revision/")
		if !ok || r.URL.Query().Get("blobs") != "true" {
			http.NotFound(w, r)
			return
		}
		type lfs struct {
			SHA256 string `json:"sha256"`
			Size   int64  `json:"size"`
		}
		type sib struct {
			RFilename string `json:"rfilename"`
			Size      int64  `json:"size"`
			BlobID    string `json:"blobId"`
			LFS       *lfs   `json:"lfs,omitempty"`
		}
		var sibs []sib
		for k, f := range h.files {
			if name, ok := strings.CutPrefix(k, repo+"/"); ok {
				s := sib{RFilename: name, Size: int64(len(f.data)), BlobID: fmt.Sprintf("%040x", len(f.data))}
				if f.lfs {
					s.LFS = &lfs{SHA256: h.announced(f), Size: int64(len(f.data))}
				}
				sibs = append(sibs, s)
			}
		}
		if sibs == nil {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": repo, "sha": h.commit, "siblings": sibs})
		return
	}
	// /{org}/{name}/resolve/{rev}/{path}
	parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 5)
	if len(parts) != 5 || parts[2] != "resolve" {
		http.NotFound(w, r)
		return
	}
	key := parts[0] + "/" + parts[1] + "/" + parts[4]
	f, ok := h.files[key]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Repo-Commit", h.commit)
	if f.lfs {
		w.Header().Set("X-Linked-Etag", `"`+h.announced(f)+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(f.data)))
		w.Header().Set("Location", h.cdn.URL+"/"+key+"?X-Amz-Signature=abc")
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", fmt.Sprintf(`"%040x"`, len(f.data)))
	http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(f.data))
}

func (h *fakeHub) announced(f hubFile) string {
	if f.lie != "" {
		return f.lie
	}
	return sha(f.data)
}

func (h *fakeHub) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.log...)
}

func testOptions(t *testing.T, h *fakeHub) (Options, *[]string, *progressLog) {
	var logs []string
	pl := &progressLog{last: map[string]provstatus.Download{}}
	o := Options{HFToken: hfToken, HFHome: filepath.Join(t.TempDir(), "hfhome"), RetryDelay: time.Millisecond,
		Log: func(s string) { logs = append(logs, s) }, OnProgress: pl.add}
	if h != nil {
		o.HFEndpoint = h.hub.URL
	}
	return o, &logs, pl
}

// progressLog keeps what OnProgress received.
type progressLog struct {
	all  []provstatus.Download
	last map[string]provstatus.Download
}

func (p *progressLog) add(d provstatus.Download) {
	p.all = append(p.all, d)
	p.last[d.ID] = d
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && (strings.HasSuffix(p, ".part") || strings.HasSuffix(p, ".meta") || strings.HasSuffix(p, ".incomplete")) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

func TestHFFilesToDestAndCache(t *testing.T) {
	big, small := payload(3<<20+17, 1), payload(1000, 2)
	h := newFakeHub(t, map[string]hubFile{
		"org/model/weights.safetensors": {data: big, lfs: true},
		"org/model/config.json":         {data: small},
	})
	opts, logs, pl := testOptions(t, h)
	dir := t.TempDir()
	specs := []Spec{
		{URL: "https://huggingface.co/org/model/resolve/main/weights.safetensors", Dest: dir + "/models/"},
		{URL: "https://huggingface.co/org/model/resolve/main/config.json", Dest: dir + "/cfg/c.json"},
		{URL: "https://huggingface.co/org/model/resolve/main/weights.safetensors"}, // to the cache
	}
	if err := Run(context.Background(), specs, opts); err != nil {
		t.Fatalf("Run: %v\nlogs: %q", err, *logs)
	}
	if !bytes.Equal(mustRead(t, dir+"/models/weights.safetensors"), big) || !bytes.Equal(mustRead(t, dir+"/cfg/c.json"), small) {
		t.Fatal("contents differ")
	}
	cache := filepath.Join(opts.HFHome, "hub", "models--org--model")
	link := filepath.Join(cache, "snapshots", h.commit, "weights.safetensors")
	if target, err := os.Readlink(link); err != nil || target != "../../blobs/"+sha(big) {
		t.Errorf("snapshot link: %q %v", target, err)
	}
	if !bytes.Equal(mustRead(t, link), big) {
		t.Error("cached blob differs")
	}
	if ref := mustRead(t, filepath.Join(cache, "refs", "main")); string(ref) != h.commit {
		t.Errorf("refs/main = %q", ref)
	}
	// The token went to the hub, never to the storage host.
	for _, r := range h.requests() {
		if strings.Contains(r, strings.TrimPrefix(h.cdn.URL, "http://")) && strings.HasSuffix(r, "auth=true") {
			t.Errorf("token sent to the storage: %s", r)
		}
	}
	for _, l := range *logs {
		if strings.Contains(l, hfToken) {
			t.Errorf("token in a log line: %q", l)
		}
	}
	d := pl.last["1"]
	if d.State != provstatus.Done || d.Bytes != int64(len(big)) || d.Total != int64(len(big)) || d.Kind != KindHF || d.Dest != dir+"/models/weights.safetensors" {
		t.Errorf("progress: %+v", d)
	}
	noLeftovers(t, dir)
	noLeftovers(t, opts.HFHome)

	// A second run finds everything in place and fetches nothing.
	before := len(h.requests())
	if err := Run(context.Background(), specs[:2], opts); err != nil {
		t.Fatal(err)
	}
	if n := len(h.requests()) - before; n != 0 {
		t.Errorf("second run made %d requests", n)
	}
	if d := pl.last["1"]; d.State != provstatus.Done || d.Bytes != int64(len(big)) || d.Total != int64(len(big)) {
		t.Errorf("a file in place counts as fetched: %+v", d)
	}
}

func TestHFRefusedWithoutTokenIsNotRetried(t *testing.T) {
	h := newFakeHub(t, map[string]hubFile{"org/gated/m.bin": {data: payload(10, 1)}})
	opts, _, pl := testOptions(t, h)
	opts.HFToken = ""
	dest := filepath.Join(t.TempDir(), "m.bin")
	err := Run(context.Background(), []Spec{{URL: "https://huggingface.co/org/gated/resolve/main/m.bin", Dest: dest}}, opts)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "https://huggingface.co/org/gated/resolve/main/m.bin") {
		t.Fatalf("err = %v", err)
	}
	if n := len(h.requests()); n != 1 {
		t.Errorf("a 401 was tried %d times: %q", n, h.requests())
	}
	if _, ok := exists(dest); ok {
		t.Error("dest exists")
	}
	if d := pl.last["1"]; d.State != provstatus.Failed || d.Error == "" {
		t.Errorf("progress: %+v", d)
	}
}

func TestHFRepoToDestAndCache(t *testing.T) {
	files := map[string]hubFile{
		"org/llm/config.json":                   {data: payload(300, 1)},
		"org/llm/model-00001.safetensors":       {data: payload(1<<20+3, 2), lfs: true},
		"org/llm/model-00002.safetensors":       {data: payload(2<<20+5, 3), lfs: true},
		"org/llm/tokenizer/tokenizer_conf.json": {data: payload(77, 4)},
	}
	h := newFakeHub(t, files)
	opts, logs, pl := testOptions(t, h)
	dir := t.TempDir()
	err := Run(context.Background(), []Spec{
		{URL: "https://huggingface.co/org/llm", Dest: dir + "/llm"},
		{URL: "https://huggingface.co/org/llm/"},
	}, opts)
	if err != nil {
		t.Fatalf("Run: %v\n%q", err, *logs)
	}
	var total int64
	for k, f := range files {
		name := strings.TrimPrefix(k, "org/llm/")
		total += int64(len(f.data))
		if !bytes.Equal(mustRead(t, filepath.Join(dir, "llm", name)), f.data) {
			t.Errorf("%s differs in dest", name)
		}
		if !bytes.Equal(mustRead(t, filepath.Join(opts.HFHome, "hub/models--org--llm/snapshots", h.commit, name)), f.data) {
			t.Errorf("%s differs in the cache", name)
		}
	}
	if ref := mustRead(t, filepath.Join(opts.HFHome, "hub/models--org--llm/refs/main")); string(ref) != h.commit {
		t.Errorf("refs/main = %q", ref)
	}
	for _, id := range []string{"1", "2"} {
		if d := pl.last[id]; d.State != provstatus.Done || d.Bytes != total || d.Total != total || d.Kind != KindHFRepo {
			t.Errorf("progress %s: %+v (total %d)", id, d, total)
		}
	}
	noLeftovers(t, dir)
}

func TestHFRepoListingThatLeavesTheRepoIsRefused(t *testing.T) {
	h := newFakeHub(t, map[string]hubFile{"org/bad/../../escape.txt": {data: []byte("x")}})
	opts, _, _ := testOptions(t, h)
	dir := t.TempDir()
	err := Run(context.Background(), []Spec{{URL: "https://huggingface.co/org/bad", Dest: dir + "/repo"}}, opts)
	if err == nil || !strings.Contains(err.Error(), "not a path inside the repository") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := exists(filepath.Join(dir, "escape.txt")); ok {
		t.Fatal("a file escaped the destination")
	}
}

func TestSHAMismatchIsRefusedAndRemoved(t *testing.T) {
	data := payload(200<<10, 9)
	h := newFakeHub(t, map[string]hubFile{"org/m/w.bin": {data: data, lfs: true, lie: sha([]byte("other"))}})
	opts, _, _ := testOptions(t, h)
	opts.Retries = 2
	dir := t.TempDir()
	err := Run(context.Background(), []Spec{{URL: "https://huggingface.co/org/m/resolve/main/w.bin", Dest: dir + "/w.bin"}}, opts)
	if err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("err = %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("left in the destination: %v", ents)
	}
	gets := 0
	for _, r := range h.requests() {
		if strings.HasPrefix(r, "GET ") && strings.Contains(r, strings.TrimPrefix(h.cdn.URL, "http://")) {
			gets++
		}
	}
	if gets != 2 {
		t.Errorf("the file was fetched %d times, want 2 (Retries)", gets)
	}
}

// cutServer serves files over plain http; the first GET of each file is cut
// after half of it (the connection closed), unless the request resumes.
type cutServer struct {
	srv    *httptest.Server
	files  map[string][]byte
	mu     sync.Mutex
	served int64 // body bytes written
	ranges []string
	cut    map[string]bool
	fail   atomic.Int32 // answer 500 while > 0 (counts down)
	calls  atomic.Int32
}

func newCutServer(t *testing.T, files map[string][]byte, cutFirst bool) *cutServer {
	s := &cutServer{files: files, cut: map[string]bool{}}
	if cutFirst {
		for k := range files {
			s.cut[k] = true
		}
	}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if s.fail.Load() > 0 {
			s.fail.Add(-1)
			http.Error(w, "busy", http.StatusInternalServerError)
			return
		}
		data, ok := s.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		cut := s.cut[r.URL.Path] && r.Header.Get("Range") == ""
		s.cut[r.URL.Path] = false
		s.mu.Unlock()
		w.Header().Set("ETag", `"v1-`+sha(data)[:8]+`"`)
		w.Header().Set("Content-Disposition", `attachment; filename="server-name.bin"`)
		if cut {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(http.StatusOK)
			n, _ := w.Write(data[:len(data)/2])
			s.add(n)
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		cw := &countingWriter{ResponseWriter: w, s: s}
		http.ServeContent(cw, r, "", time.Unix(0, 0), bytes.NewReader(data))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *cutServer) stats() ([]string, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...), s.served
}

func (s *cutServer) add(n int) {
	s.mu.Lock()
	s.served += int64(n)
	s.mu.Unlock()
}

type countingWriter struct {
	http.ResponseWriter
	s *cutServer
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.s.add(n)
	return n, err
}

func TestResumeAfterConnectionCut(t *testing.T) {
	data := payload(4<<20, 5)
	s := newCutServer(t, map[string][]byte{"/big.bin": data}, true)
	opts, logs, pl := testOptions(t, nil)
	dest := filepath.Join(t.TempDir(), "big.bin")
	if err := Run(context.Background(), []Spec{{URL: s.srv.URL + "/big.bin", Dest: dest}}, opts); err != nil {
		t.Fatalf("Run: %v\n%q", err, *logs)
	}
	if !bytes.Equal(mustRead(t, dest), data) {
		t.Fatal("content differs")
	}
	ranges, served := s.stats()
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", len(data)/2) {
		t.Errorf("requests' ranges: %q", ranges)
	}
	if served > int64(len(data))+int64(len(data))/10 {
		t.Errorf("served %d bytes for a %d-byte file", served, len(data))
	}
	if d := pl.last["1"]; !d.Resumed || d.State != provstatus.Done || d.Bytes != int64(len(data)) {
		t.Errorf("progress: %+v", d)
	}
	noLeftovers(t, filepath.Dir(dest))
}

func TestResumeAcrossRunsFromAKeptPartialFile(t *testing.T) {
	data := payload(2<<20, 6)
	s := newCutServer(t, map[string][]byte{"/f.bin": data}, true)
	opts, _, _ := testOptions(t, nil)
	opts.Retries = 1
	dir := t.TempDir()
	dest := filepath.Join(dir, "f.bin")
	spec := []Spec{{URL: s.srv.URL + "/f.bin", Dest: dest}}
	if err := Run(context.Background(), spec, opts); err == nil {
		t.Fatal("the cut transfer should fail with one attempt")
	}
	if n, ok := exists(partialName(dest)); !ok || n != int64(len(data)/2) {
		t.Fatalf("partial file: %d %v", n, ok)
	}
	if _, ok := exists(dest); ok {
		t.Fatal("an incomplete file is in place")
	}
	if err := Run(context.Background(), spec, opts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, dest), data) {
		t.Fatal("content differs")
	}
	if ranges, _ := s.stats(); len(ranges) != 2 || ranges[1] != fmt.Sprintf("bytes=%d-", len(data)/2) {
		t.Errorf("ranges %q", ranges)
	}
	noLeftovers(t, dir)
}

func TestRetriesAreBounded(t *testing.T) {
	s := newCutServer(t, map[string][]byte{"/x.bin": payload(100, 1)}, false)
	s.fail.Store(1000)
	opts, logs, _ := testOptions(t, nil)
	opts.Retries = 3
	dest := filepath.Join(t.TempDir(), "x.bin")
	err := Run(context.Background(), []Spec{{URL: s.srv.URL + "/x.bin", Dest: dest}}, opts)
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("err = %v", err)
	}
	if n := s.calls.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	want := []string{"Downloading " + s.srv.URL + "/x.bin (attempt 1/3)...", "Retrying in 1ms...", "Failed to download " + s.srv.URL + "/x.bin after 3 attempts"}
	for _, w := range want {
		if !contains(*logs, w) {
			t.Errorf("no log line %q in %q", w, *logs)
		}
	}
	// Two failures, then it works: a transient error costs a retry, no more.
	s.fail.Store(2)
	s.calls.Store(0)
	if err := Run(context.Background(), []Spec{{URL: s.srv.URL + "/x.bin", Dest: dest}}, opts); err != nil || s.calls.Load() != 3 {
		t.Errorf("err %v after %d calls", err, s.calls.Load())
	}
	// 404 is not retried.
	s.calls.Store(0)
	if err := Run(context.Background(), []Spec{{URL: s.srv.URL + "/nope", Dest: dest + "2"}}, opts); err == nil || s.calls.Load() != 1 {
		t.Errorf("404: err %v after %d calls", err, s.calls.Load())
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

func TestNameFromServerAndMasking(t *testing.T) {
	data := payload(5000, 3)
	s := newCutServer(t, map[string][]byte{"/dl": data}, false)
	opts, logs, pl := testOptions(t, nil)
	dir := t.TempDir()
	u := strings.Replace(s.srv.URL, "http://", "http://user:PASSWORD@", 1) + "/dl?token=QUERYSECRET"
	if err := Run(context.Background(), []Spec{{URL: u, Dest: dir + "/"}}, opts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(dir, "server-name.bin")), data) {
		t.Fatal("not stored under the server's name")
	}
	bad := strings.Replace(s.srv.URL, "http://", "http://user:PASSWORD@", 1) + "/missing?token=QUERYSECRET"
	err := Run(context.Background(), []Spec{{URL: bad, Dest: dir + "/m.bin"}}, opts)
	if err == nil {
		t.Fatal("want an error")
	}
	var shown []string
	shown = append(shown, err.Error())
	shown = append(shown, *logs...)
	for _, d := range pl.all {
		shown = append(shown, d.Source, d.Error, d.Dest)
	}
	for _, l := range shown {
		if strings.Contains(l, "PASSWORD") || strings.Contains(l, "QUERYSECRET") {
			t.Errorf("credential shown: %q", l)
		}
	}
	if !strings.Contains(err.Error(), "http://…@127.0.0.1") {
		t.Errorf("the error should name the URL, masked: %v", err)
	}
}

// TestPoolsRunInParallel holds every request until as many are in flight
// as the pools allow, then checks no more ever were: the plain pool at its
// size, the HF pool beside it at the same time.
func TestPoolsRunInParallel(t *testing.T) {
	const urlPool, hfPool = 3, 2
	var inflight, maxSeen atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	hold := func(w http.ResponseWriter, r *http.Request, data []byte) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := maxSeen.Load()
			if n <= m || maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		if n >= urlPool+hfPool {
			once.Do(func() { close(release) })
		}
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(data))
	}
	data := payload(1000, 1)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hold(w, r, data) }))
	defer plain.Close()
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Repo-Commit", "abc")
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			return
		}
		hold(w, r, data)
	}))
	defer hub.Close()
	opts, _, _ := testOptions(t, nil)
	opts.HFEndpoint, opts.URLConcurrency, opts.HFConcurrency = hub.URL, urlPool, hfPool
	dir := t.TempDir()
	var specs []Spec
	for i := range 7 {
		specs = append(specs, Spec{URL: fmt.Sprintf("%s/f%d", plain.URL, i), Dest: fmt.Sprintf("%s/p%d", dir, i)})
		specs = append(specs, Spec{URL: fmt.Sprintf("https://huggingface.co/o/r/resolve/main/f%d", i), Dest: fmt.Sprintf("%s/h%d", dir, i)})
	}
	if err := Run(context.Background(), specs, opts); err != nil {
		t.Fatal(err)
	}
	select {
	case <-release:
	default:
		t.Fatal("the pools never had their full width in flight")
	}
	if m := maxSeen.Load(); m != urlPool+hfPool {
		t.Errorf("max in flight %d, want %d", m, urlPool+hfPool)
	}
}

// civitaiServer is a TLS server for civitai.com and its CDN host,
// reached by a transport that dials it for any address: the CivitAI host
// check itself is the production one.
func civitaiServer(t *testing.T, handler http.Handler) http.RoundTripper {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "civitai.com"},
		DNSNames:  []string{"civitai.com", "cdn.civitai-storage.example", "civitai.com.evil.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := newTransport()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	addr := srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return tr
}

func TestCivitAITokenOnlyToCivitAIAndNeverToItsCDN(t *testing.T) {
	data := payload(70000, 4)
	var mu sync.Mutex
	seen := map[string]string{} // host+path -> Authorization
	tr := civitaiServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Host+r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		switch {
		case r.Host == "civitai.com" && strings.HasPrefix(r.URL.Path, "/api/download/models/"):
			if r.Header.Get("Authorization") != "Bearer "+civitaiToken {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "https://cdn.civitai-storage.example/file/abc?X-Amz-Signature=zz", http.StatusTemporaryRedirect)
		case r.Host == "cdn.civitai-storage.example":
			if r.Header.Get("Authorization") != "" {
				http.Error(w, "Only one auth mechanism allowed", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Disposition", `attachment; filename="lora_v1.safetensors"`)
			http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(data))
		default:
			http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(data))
		}
	}))
	opts, logs, _ := testOptions(t, nil)
	opts.CivitAIToken, opts.Transport = civitaiToken, tr
	dir := t.TempDir()
	err := Run(context.Background(), []Spec{
		{URL: "https://civitai.com/api/download/models/12345", Dest: dir + "/loras/"},
		{URL: "https://civitai.com.evil.example/api/download/models/1", Dest: dir + "/evil.bin"},
	}, opts)
	if err != nil {
		t.Fatalf("Run: %v\n%q", err, *logs)
	}
	if !bytes.Equal(mustRead(t, dir+"/loras/lora_v1.safetensors"), data) {
		t.Fatal("CivitAI file differs")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["civitai.com/api/download/models/12345"] != "Bearer "+civitaiToken {
		t.Errorf("CivitAI got %q", seen["civitai.com/api/download/models/12345"])
	}
	if a := seen["cdn.civitai-storage.example/file/abc"]; a != "" {
		t.Errorf("the CDN got Authorization %q", a)
	}
	if a := seen["civitai.com.evil.example/api/download/models/1"]; a != "" {
		t.Errorf("a lookalike host got Authorization %q", a)
	}
	for _, l := range *logs {
		if strings.Contains(l, civitaiToken) {
			t.Errorf("token logged: %q", l)
		}
	}
}

func TestCancelKeepsPartialAndReportsStopped(t *testing.T) {
	data := payload(1<<20, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		_, _ = w.Write(data[:len(data)/4])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	opts, _, pl := testOptions(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dest := filepath.Join(t.TempDir(), "f")
	go func() { // cancel once bytes are on disk, half way
		defer cancel()
		testwait.Poll(10*time.Second, 10*time.Millisecond, func() bool {
			n, _ := exists(partialName(dest))
			return n > 0
		})
	}()
	err := Run(ctx, []Spec{{URL: srv.URL + "/f", Dest: dest}}, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n, ok := exists(partialName(dest)); !ok || n == 0 {
		t.Errorf("partial file %d %v", n, ok)
	}
	if d := pl.last["1"]; d.State != provstatus.Stopped {
		t.Errorf("progress: %+v", d)
	}
}

func TestTrackerRateAndETA(t *testing.T) {
	var got []provstatus.Download
	tr := newTracker("1", Spec{URL: "https://h/x", Dest: "/d"}, func(d provstatus.Download) { got = append(got, d) })
	now := time.Unix(1000, 0)
	tr.now = func() time.Time { return now }
	tr.samples = nil // taken on the real clock
	tr.running()
	tr.addTotal(1000)
	for range 4 {
		now = now.Add(time.Second)
		tr.add(100)
	}
	d := got[len(got)-1]
	if d.Bytes != 400 || d.RateBps != 100 || d.ETASeconds != 6 {
		t.Errorf("%+v", d)
	}
	tr.finish(provstatus.Done, "")
	if d := got[len(got)-1]; d.State != provstatus.Done || d.ETASeconds != 0 || d.RateBps != 0 {
		t.Errorf("%+v", d)
	}
}
