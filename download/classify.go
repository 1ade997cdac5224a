package download

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/instanceportal/portal/redact"
)

// Kinds of download, as provstatus.Download.Kind names them.
const (
	KindHF      = "hf"      // one file of a Hugging Face repository
	KindHFRepo  = "hf-repo" // a whole Hugging Face repository
	KindCivitAI = "civitai" // CivitAI over https: its token goes with it
	KindURL     = "url"     // anything else, fetched as is, no credential
)

// Target is what a manifest URL names.
type Target struct {
	Kind string
	// Repo ("org/name"), Revision and File are set for the Hugging Face
	// kinds; File is empty for a repository. Revision is "" for a
	// repository URL (the hub's default branch, "main").
	Repo, Revision, File string
}

// HFPool tells which of the two pools a target runs in: the Hugging Face
// pool, or the other one (CivitAI and plain URLs), as the reference splits
// them.
func (t Target) HFPool() bool { return t.Kind == KindHF || t.Kind == KindHFRepo }

// The reference's two Hugging Face URL shapes. Anything else on the hub's
// host is refused, as the reference refuses it ("Invalid HuggingFace URL").
var (
	hfFileRE = regexp.MustCompile(`^https://huggingface\.co/([^/]+/[^/]+)/resolve/([^/]+)/(.*)$`)
	hfRepoRE = regexp.MustCompile(`^https://huggingface\.co/([^/]+/[^/]+?)/?$`)
)

// maxURL bounds a manifest URL; a real one is a few hundred bytes.
const maxURL = 8 << 10

// Classify decides how a manifest URL is fetched. The host decides, never a
// substring: huggingface.co and its subdomains go to the Hugging Face pool
// (and must then have one of the hub's two shapes), https on civitai.com or
// a subdomain is CivitAI, everything else over http(s) is a plain URL.
// Errors carry the URL masked.
func Classify(raw string) (Target, error) {
	if len(raw) > maxURL {
		return Target{}, fmt.Errorf("URL longer than %d bytes", maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, errors.New("invalid URL: not parsable")
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case host == "huggingface.co" || strings.HasSuffix(host, ".huggingface.co"):
		return parseHF(raw)
	case u.Scheme == "https" && isCivitAIHost(host):
		return Target{Kind: KindCivitAI}, nil
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
		return Target{Kind: KindURL}, nil
	}
	return Target{}, fmt.Errorf("unsupported URL (scheme %.16q, host %t): want http:// or https://", u.Scheme, u.Host != "")
}

// isCivitAIHost is the reference's host match: civitai.com or a subdomain.
// Only it (and https) decides whether the CivitAI token is sent.
func isCivitAIHost(host string) bool {
	return host == "civitai.com" || strings.HasSuffix(host, ".civitai.com")
}

//lint:ignore ST1005 the reference's words, which logs are grepped for
var errInvalidHF = errors.New("Invalid HuggingFace URL")

func parseHF(raw string) (Target, error) {
	// A query or fragment is not part of the file's name.
	clean := raw
	if i := strings.IndexAny(clean, "?#"); i >= 0 {
		clean = clean[:i]
	}
	if m := hfFileRE.FindStringSubmatch(clean); m != nil {
		file, err := url.PathUnescape(m[3])
		if err == nil && validRepo(m[1]) && validSegment(m[2]) && validRepoPath(file) {
			return Target{Kind: KindHF, Repo: m[1], Revision: m[2], File: file}, nil
		}
	} else if m := hfRepoRE.FindStringSubmatch(clean); m != nil && validRepo(m[1]) {
		return Target{Kind: KindHFRepo, Repo: m[1]}, nil
	}
	return Target{}, fmt.Errorf("%w: %s", errInvalidHF, redact.URLs(raw))
}

// validSegment is one path element that names nothing above it.
func validSegment(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}

func validRepo(r string) bool {
	org, name, ok := strings.Cut(r, "/")
	return ok && validSegment(org) && validSegment(name)
}

// validRepoPath is a file path inside a repository: relative, clean, never
// leaving it (a hub listing is data from elsewhere).
func validRepoPath(p string) bool {
	if p == "" || strings.ContainsAny(p, "\\\x00") || path.IsAbs(p) || path.Clean(p) != p {
		return false
	}
	for _, s := range strings.Split(p, "/") {
		if !validSegment(s) {
			return false
		}
	}
	return true
}
