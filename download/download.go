// Package download fetches a provisioning manifest's `downloads`: Hugging
// Face files and repositories (through the hub's HTTP API at HF_ENDPOINT,
// into a destination or into $HF_HOME's cache layout), CivitAI files (its
// token as an Authorization header, dropped on the redirect to its CDN) and
// plain URLs, in two independent parallel pools as the reference runs them.
//
// Each file is streamed to a partial file beside its destination, checked
// (size; the hub's sha256 where it gives one) and renamed into place. An
// interrupted transfer keeps its partial file and the next attempt (or the
// next run) resumes it with a Range request. Tokens travel only as request
// headers; every URL shown or logged goes through redact.URLs. Progress is
// reported as provstatus.Download values.
package download

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/redact"
)

// Settings read from the environment, each declared here once with its
// default (OptionsFromEnv reads them).
const (
	// HFEndpointEnv is where the Hugging Face hub is reached (the variable
	// huggingface_hub reads); manifest URLs still say huggingface.co.
	HFEndpointEnv     = "HF_ENDPOINT"
	DefaultHFEndpoint = "https://huggingface.co"
	// HFTokenEnv and CivitAITokenEnv are the reference's token variables
	// (a manifest's auth section may name others).
	HFTokenEnv      = "HF_TOKEN"
	CivitAITokenEnv = "CIVITAI_TOKEN"
	// HFHomeEnv is the Hugging Face home; its hub/ holds the cache that
	// downloads without a dest fill. The reference's boot sets it to
	// ${WORKSPACE}/.hf_home.
	HFHomeEnv     = "HF_HOME"
	DefaultHFHome = "/workspace/.hf_home"
)

// Defaults of Options, the reference's settings.concurrency and
// settings.retry.
const (
	DefaultHFConcurrency  = 3 // settings.concurrency.hf_downloads
	DefaultURLConcurrency = 5 // settings.concurrency.wget_downloads
	DefaultRetries        = 5 // settings.retry.max_attempts
	DefaultRetryDelay     = 2 * time.Second
	DefaultBackoff        = 2 // settings.retry.backoff_multiplier
	// DefaultStallTimeout ends an attempt whose transfer made no progress
	// for that long (it is then retried, resuming).
	DefaultStallTimeout = 60 * time.Second
)

// Spec is one manifest entry: a URL and where it goes. Dest ending in "/"
// is a directory: the file name comes from the server (Content-Disposition,
// else the URL's last segment) or, for Hugging Face, from the URL. An empty
// Dest sends a Hugging Face download to the cache under HFHome.
type Spec struct {
	URL  string `json:"url"`
	Dest string `json:"dest"`
}

// Options are the settings of one Run. Zero values take the defaults.
type Options struct {
	// HFEndpoint is the hub's base URL. Default: https://huggingface.co
	HFEndpoint string
	// HFToken goes to HFEndpoint's host only, as a header.
	HFToken string
	// CivitAIToken goes to https civitai.com hosts only, as a header, and
	// never across a redirect to another host.
	CivitAIToken string
	// HFHome holds the hub cache (HFHome/hub). Default: /workspace/.hf_home
	HFHome string
	// Concurrency sizes both pools when set; otherwise HFConcurrency and
	// URLConcurrency (or their defaults, 3 and 5) do.
	Concurrency    int
	HFConcurrency  int
	URLConcurrency int
	// Retries is the number of attempts per download, the reference's
	// max_attempts (1 = no retry). Default: 5. An answer no retry can
	// change (401, 403, 404, 410) ends the download at once.
	Retries int
	// RetryDelay is the wait before the second attempt, multiplied by
	// Backoff before each later one. Default: 2s, ×2.
	RetryDelay time.Duration
	Backoff    int
	// StallTimeout ends an attempt that receives nothing for that long.
	// Default: 60s.
	StallTimeout time.Duration
	// OnProgress receives each download's progress, at state changes and
	// at most a few times a second while bytes flow. Calls are serialized.
	OnProgress func(provstatus.Download)
	// Log receives the reference's log lines (URLs masked). Calls are
	// serialized.
	Log func(string)
	// Transport carries the requests; nil is a tuned clone of
	// http.DefaultTransport. Tests hand in one that dials a local server.
	Transport http.RoundTripper
}

// OptionsFromEnv reads the settings above from getenv (os.Getenv).
func OptionsFromEnv(getenv func(string) string) Options {
	return Options{
		HFEndpoint:   getenv(HFEndpointEnv),
		HFToken:      getenv(HFTokenEnv),
		CivitAIToken: getenv(CivitAITokenEnv),
		HFHome:       getenv(HFHomeEnv),
	}
}

func (o Options) withDefaults() Options {
	if o.HFEndpoint == "" {
		o.HFEndpoint = DefaultHFEndpoint
	}
	o.HFEndpoint = strings.TrimRight(o.HFEndpoint, "/")
	if o.HFHome == "" {
		o.HFHome = DefaultHFHome
	}
	if o.Concurrency > 0 {
		o.HFConcurrency, o.URLConcurrency = o.Concurrency, o.Concurrency
	}
	if o.HFConcurrency <= 0 {
		o.HFConcurrency = DefaultHFConcurrency
	}
	if o.URLConcurrency <= 0 {
		o.URLConcurrency = DefaultURLConcurrency
	}
	if o.Retries <= 0 {
		o.Retries = DefaultRetries
	}
	if o.RetryDelay < 0 {
		o.RetryDelay = 0
	} else if o.RetryDelay == 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.Log == nil {
		o.Log = func(string) {}
	}
	if o.OnProgress == nil {
		o.OnProgress = func(provstatus.Download) {}
	}
	return o
}

// DryRunLine is what a dry run prints for spec, in the reference's shapes:
//
//	[DRY RUN] Would download HF org/repo/file -> dest | HF cache
//	[DRY RUN] Would download HF repo org/repo -> dest | HF cache
//	[DRY RUN] Would download wget URL -> dest
//
// (the URL masked). A URL that cannot be downloaded gives
// "[DRY RUN] Invalid download: …" with the reason.
func DryRunLine(spec Spec, opts Options) string {
	t, err := Classify(spec.URL)
	if err != nil {
		return "[DRY RUN] Invalid download: " + err.Error()
	}
	switch t.Kind {
	case KindHF:
		if spec.Dest == "" {
			return fmt.Sprintf("[DRY RUN] Would download HF %s/%s -> HF cache", t.Repo, t.File)
		}
		return fmt.Sprintf("[DRY RUN] Would download HF %s/%s -> %s", t.Repo, t.File, hfFileDest(spec.Dest, t.File))
	case KindHFRepo:
		if spec.Dest == "" {
			return fmt.Sprintf("[DRY RUN] Would download HF repo %s -> HF cache", t.Repo)
		}
		return fmt.Sprintf("[DRY RUN] Would download HF repo %s -> %s", t.Repo, spec.Dest)
	}
	dest := spec.Dest
	if strings.HasSuffix(dest, "/") {
		dest = filepath.Join(strings.TrimRight(dest, "/"), "<content-disposition>")
	}
	return fmt.Sprintf("[DRY RUN] Would download wget %s -> %s", redact.URLs(spec.URL), dest)
}

// hfFileDest is where a single Hugging Face file lands: dest, or inside it
// under the file's base name when dest ends in "/".
func hfFileDest(dest, file string) string {
	if strings.HasSuffix(dest, "/") {
		return filepath.Join(dest, path.Base(file))
	}
	return dest
}

// Validate checks what can be checked of spec before anything runs: its URL
// has a shape we download, and a plain URL has a destination.
func Validate(spec Spec) error {
	t, err := Classify(spec.URL)
	if err != nil {
		return err
	}
	if !t.HFPool() && spec.Dest == "" {
		return fmt.Errorf("%s: dest is required (only Hugging Face downloads may go to the HF cache)", redact.URLs(spec.URL))
	}
	return nil
}

// Run downloads every spec: the Hugging Face ones in one pool, the others
// in another, both at once. It returns when all are done; the error joins
// one error per failed download, each naming its URL masked. Progress goes
// to opts.OnProgress with ID = the spec's index in specs (from "1").
func Run(ctx context.Context, specs []Spec, opts Options) error {
	opts = opts.withDefaults()
	r := newRunner(opts)
	var hf, other []int
	for i, s := range specs {
		if t, err := Classify(s.URL); err == nil && t.HFPool() {
			hf = append(hf, i)
		} else {
			other = append(other, i)
		}
	}
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	pool := func(idx []int, size int, label string) {
		defer wg.Done()
		if len(idx) == 0 {
			return
		}
		r.log("Starting %d %s (max %d parallel)", len(idx), label, size)
		var g errgroup.Group
		g.SetLimit(size)
		for _, i := range idx {
			g.Go(func() error { errs[i] = r.one(ctx, i, specs[i]); return nil })
		}
		_ = g.Wait()
		failed := 0
		for _, i := range idx {
			if errs[i] != nil {
				failed++
			}
		}
		if failed > 0 {
			r.log("%d/%d %s failed", failed, len(idx), label)
		} else {
			r.log("All %d %s completed successfully", len(idx), label)
		}
	}
	wg.Add(2)
	go pool(hf, opts.HFConcurrency, "HF downloads")
	go pool(other, opts.URLConcurrency, "wget downloads")
	wg.Wait()
	return errors.Join(errs...)
}

// maskedError is an error whose text went through redact.URLs: net/http's
// errors quote the URL, query string included.
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

func mask(err error) error {
	if err == nil {
		return nil
	}
	return &maskedError{msg: redact.URLs(err.Error()), err: err}
}
