package download

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// The hub's cache layout under HF_HOME, as huggingface_hub writes it (so
// that vLLM, transformers and `hf` find what we fetched):
//
//	hub/models--ORG--NAME/blobs/<etag>                 the bytes
//	hub/models--ORG--NAME/snapshots/<commit>/<path>    -> ../../blobs/<etag>
//	hub/models--ORG--NAME/refs/<revision>              the commit
func (r *runner) repoCacheDir(repo string) string {
	return filepath.Join(r.opts.HFHome, "hub", "models--"+strings.ReplaceAll(repo, "/", "--"))
}

// hfFileMeta is what the hub says of one file before it is fetched.
type hfFileMeta struct {
	commit string
	etag   string // LFS: the sha256; otherwise the git blob id
	size   int64  // -1 when unknown
}

// sha256 is the digest to check: LFS files' etag is their sha256.
func (m hfFileMeta) sha256() string {
	if sha256Hex.MatchString(m.etag) {
		return m.etag
	}
	return ""
}

var (
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// etagRE and commitRE bound what becomes a file name in the cache.
	etagRE   = regexp.MustCompile(`^[0-9A-Za-z]{1,128}$`)
	commitRE = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)
)

func (r *runner) resolveURL(repo, rev, file string) string {
	segs := strings.Split(file, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return r.opts.HFEndpoint + "/" + repo + "/resolve/" + url.PathEscape(rev) + "/" + strings.Join(segs, "/")
}

// hfHead asks the hub about one file, as huggingface_hub does: a HEAD on its
// resolve URL, following redirects on the hub's host only (a renamed repo)
// and reading the hub's headers off the answer that points to the storage.
func (r *runner) hfHead(ctx context.Context, repo, rev, file string) (hfFileMeta, error) {
	u := r.resolveURL(repo, rev, file)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return hfFileMeta{}, err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept-Encoding", "identity")
	if a := r.authFor(req.URL, KindHF); a != "" {
		req.Header.Set("Authorization", a)
	}
	c := *r.client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
			return http.ErrUseLastResponse
		}
		return checkRedirect(req, via)
	}
	resp, err := c.Do(req)
	if err != nil {
		return hfFileMeta{}, err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return hfFileMeta{}, &statusError{code: resp.StatusCode, url: u}
	}
	h := resp.Header
	m := hfFileMeta{commit: h.Get("X-Repo-Commit"), size: -1}
	m.etag = normalizeETag(h.Get("X-Linked-Etag"))
	if m.etag == "" {
		m.etag = normalizeETag(h.Get("ETag"))
	}
	if s := h.Get("X-Linked-Size"); s != "" {
		m.size, _ = strconv.ParseInt(s, 10, 64)
	} else if resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 {
		m.size = resp.ContentLength
	}
	return m, nil
}

func normalizeETag(e string) string {
	return strings.Trim(strings.TrimPrefix(e, "W/"), `"`)
}

// hfFile fetches one file of a repository, to dest or into the cache.
func (r *runner) hfFile(ctx context.Context, t Target, dest string, tr *tracker) error {
	tr.running()
	label := t.Repo + "/" + t.File
	if dest != "" {
		dest = hfFileDest(dest, t.File)
		tr.setDest(dest)
		if _, ok := exists(dest); ok {
			r.skip(&fileJob{size: -1}, tr, dest)
			return nil
		}
	}
	var f *fileJob
	var meta hfFileMeta
	err := r.retry(ctx, label, func() error {
		if f == nil {
			m, err := r.hfHead(ctx, t.Repo, t.Revision, t.File)
			if err != nil {
				return err
			}
			meta = m
			f = &fileJob{url: r.resolveURL(t.Repo, t.Revision, t.File), kind: KindHF, label: label,
				dest: dest, size: m.size, sha256: m.sha256()}
			if dest == "" {
				if err := r.cacheTarget(f, t.Repo, t.File, m); err != nil {
					return err
				}
				tr.setDest(r.snapshotPath(t.Repo, m.commit, t.File))
			} else {
				f.partial = partialName(dest)
			}
		}
		return r.attempt(ctx, f, tr)
	})
	if err != nil {
		return err
	}
	if dest == "" {
		if err := r.linkSnapshot(t.Repo, t.Revision, t.File, meta); err != nil {
			return err
		}
		r.log("Successfully downloaded %s to HF cache", label)
	}
	return nil
}

// cacheTarget points f at the blob the cache keeps for m.
func (r *runner) cacheTarget(f *fileJob, repo, file string, m hfFileMeta) error {
	if !etagRE.MatchString(m.etag) || !commitRE.MatchString(m.commit) {
		return fmt.Errorf("the hub gave no usable ETag / X-Repo-Commit for %s/%s", repo, file)
	}
	f.dest = filepath.Join(r.repoCacheDir(repo), "blobs", m.etag)
	f.partial = f.dest + ".incomplete" // huggingface_hub's name for it
	return nil
}

func (r *runner) snapshotPath(repo, commit, file string) string {
	return filepath.Join(r.repoCacheDir(repo), "snapshots", commit, filepath.FromSlash(file))
}

// linkSnapshot makes snapshots/<commit>/<file> point at its blob and
// records refs/<rev> when rev is a name rather than the commit.
func (r *runner) linkSnapshot(repo, rev, file string, m hfFileMeta) error {
	link := r.snapshotPath(repo, m.commit, file)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	blob := filepath.Join(r.repoCacheDir(repo), "blobs", m.etag)
	rel, err := filepath.Rel(filepath.Dir(link), blob)
	if err != nil {
		return err
	}
	if cur, err := os.Readlink(link); err != nil || cur != rel {
		tmp := link + ".tmp-link"
		_ = os.Remove(tmp)
		if err := os.Symlink(rel, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, link); err != nil {
			return err
		}
	}
	return r.writeRef(repo, rev, m.commit)
}

func (r *runner) writeRef(repo, rev, commit string) error {
	if rev == "" || rev == commit {
		return nil
	}
	ref := filepath.Join(r.repoCacheDir(repo), "refs", filepath.FromSlash(rev))
	if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
		return err
	}
	return os.WriteFile(ref, []byte(commit), 0o644)
}

// repoInfo is the part of the hub's /api/models/{repo}/revision/{rev}
// answer (with blobs=true) that a download needs.
type repoInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
		Size      *int64 `json:"size"`
		BlobID    string `json:"blobId"`
		LFS       *struct {
			SHA256 string `json:"sha256"`
			Size   int64  `json:"size"`
		} `json:"lfs"`
	} `json:"siblings"`
}

// maxRepoInfo bounds the listing read from the hub (a large repository's
// is a few hundred KiB).
const maxRepoInfo = 16 << 20

func (r *runner) repoListing(ctx context.Context, repo, rev string) (repoInfo, error) {
	var info repoInfo
	u := r.opts.HFEndpoint + "/api/models/" + repo + "/revision/" + url.PathEscape(rev) + "?blobs=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return info, err
	}
	req.Header.Set("User-Agent", userAgent)
	if a := r.authFor(req.URL, KindHFRepo); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return info, &statusError{code: resp.StatusCode, url: u}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxRepoInfo)).Decode(&info); err != nil {
		return info, fmt.Errorf("reading the hub's listing of %s: %w", repo, err)
	}
	if !commitRE.MatchString(info.SHA) {
		return info, fmt.Errorf("the hub's listing of %s has no commit", repo)
	}
	for _, s := range info.Siblings {
		if !validRepoPath(s.RFilename) {
			return info, fmt.Errorf("the hub's listing of %s names %q: not a path inside the repository", repo, s.RFilename)
		}
	}
	return info, nil
}

// hfRepo fetches every file of a repository at its default branch, into
// dest (as `hf download --local-dir`) or into the cache.
func (r *runner) hfRepo(ctx context.Context, t Target, dest string, tr *tracker) error {
	tr.running()
	rev := t.Revision
	if rev == "" {
		rev = "main"
	}
	if dest != "" {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return err
		}
	} else {
		tr.setDest(r.repoCacheDir(t.Repo))
	}
	var info repoInfo
	if err := r.retry(ctx, t.Repo, func() error {
		var err error
		info, err = r.repoListing(ctx, t.Repo, rev)
		return err
	}); err != nil {
		return err
	}
	jobs := make([]*fileJob, len(info.Siblings))
	metas := make([]hfFileMeta, len(info.Siblings))
	for i, s := range info.Siblings {
		m := hfFileMeta{commit: info.SHA, etag: s.BlobID, size: -1}
		if s.Size != nil {
			m.size = *s.Size
		}
		if s.LFS != nil {
			m.etag, m.size = s.LFS.SHA256, s.LFS.Size
		}
		f := &fileJob{url: r.resolveURL(t.Repo, info.SHA, s.RFilename), kind: KindHFRepo,
			label: t.Repo + "/" + s.RFilename, size: m.size, sha256: m.sha256()}
		if dest != "" {
			f.dest = filepath.Join(dest, filepath.FromSlash(s.RFilename))
			f.partial = partialName(f.dest)
		} else if err := r.cacheTarget(f, t.Repo, s.RFilename, m); err != nil {
			return err
		}
		if m.size >= 0 {
			tr.addTotal(m.size)
			f.totalAdded = true
		}
		jobs[i], metas[i] = f, m
	}
	errs := make([]error, len(jobs))
	var g errgroup.Group
	g.SetLimit(r.opts.HFConcurrency)
	for i, f := range jobs {
		g.Go(func() error {
			errs[i] = r.retry(ctx, f.label, func() error { return r.attempt(ctx, f, tr) })
			if errs[i] == nil && dest == "" {
				errs[i] = r.linkSnapshot(t.Repo, "", info.Siblings[i].RFilename, metas[i])
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if dest == "" {
		if err := r.writeRef(t.Repo, rev, info.SHA); err != nil {
			return err
		}
		r.log("Successfully downloaded repo %s to HF cache", t.Repo)
	} else {
		r.log("Successfully downloaded repo %s -> %s", t.Repo, dest)
	}
	return nil
}

// plain fetches a CivitAI or any other URL.
func (r *runner) plain(ctx context.Context, t Target, spec Spec, tr *tracker) error {
	tr.running()
	f := &fileJob{url: spec.URL, kind: t.Kind, label: spec.URL, size: -1, nonEmpty: true}
	if strings.HasSuffix(spec.Dest, "/") {
		f.dir = filepath.Clean(spec.Dest)
		f.fallback = urlFileName(spec.URL)
		f.partial = filepath.Join(f.dir, "."+urlHash(spec.URL)[:16]+".part")
	} else {
		f.dest = spec.Dest
		f.partial = partialName(spec.Dest)
	}
	return r.retry(ctx, spec.URL, func() error { return r.attempt(ctx, f, tr) })
}
