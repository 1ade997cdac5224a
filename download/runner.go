package download

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/instanceportal/portal/provstatus"
	"github.com/instanceportal/portal/redact"
)

// runner is one Run: its options, its HTTP client and the serialized
// callbacks.
type runner struct {
	opts   Options
	client *http.Client
	hfBase *url.URL
	mu     sync.Mutex // serializes opts.Log and opts.OnProgress
}

func newRunner(opts Options) *runner {
	r := &runner{opts: opts}
	r.hfBase, _ = url.Parse(opts.HFEndpoint)
	if r.hfBase == nil {
		r.hfBase = &url.URL{}
	}
	tr := opts.Transport
	if tr == nil {
		tr = newTransport()
	}
	r.client = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	return r
}

// newTransport is http.DefaultTransport's settings with room for the pools'
// connections, no transparent gzip (a download is stored as sent, and Range
// offsets count stored bytes) and a bound on waiting for headers.
func newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	tr.MaxIdleConnsPerHost = 16
	tr.ResponseHeaderTimeout = 60 * time.Second
	tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return tr
}

// maxRedirects is the reference's --max-redirect=10.
const maxRedirects = 10

// checkRedirect follows at most maxRedirects hops and keeps the
// Authorization header only while the scheme and host stay those of the
// first request: a token never follows a redirect to another host (the
// CivitAI endpoint's CDN, the hub's LFS storage), nor to plain http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

func (r *runner) log(format string, args ...any) {
	msg := redact.URLs(fmt.Sprintf(format, args...))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opts.Log(msg)
}

func (r *runner) emit(d provstatus.Download) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opts.OnProgress(d)
}

// authFor is the Authorization header a request to u carries: the HF token
// to the hub's endpoint, the CivitAI token to CivitAI over https, nothing
// anywhere else.
func (r *runner) authFor(u *url.URL, kind string) string {
	switch {
	case (kind == KindHF || kind == KindHFRepo) && r.opts.HFToken != "" &&
		u.Scheme == r.hfBase.Scheme && u.Host == r.hfBase.Host:
		return "Bearer " + r.opts.HFToken
	case kind == KindCivitAI && r.opts.CivitAIToken != "" && u.Scheme == "https" && isCivitAIHost(u.Hostname()):
		return "Bearer " + r.opts.CivitAIToken
	}
	return ""
}

// one runs one spec to its end: classified, retried, reported.
func (r *runner) one(ctx context.Context, i int, spec Spec) error {
	tr := newTracker(strconv.Itoa(i+1), spec, r.emit)
	t, err := Classify(spec.URL)
	if err == nil {
		err = Validate(spec)
	}
	if err == nil {
		tr.d.Kind = t.Kind
		switch t.Kind {
		case KindHF:
			err = r.hfFile(ctx, t, spec.Dest, tr)
		case KindHFRepo:
			err = r.hfRepo(ctx, t, spec.Dest, tr)
		default:
			err = r.plain(ctx, t, spec, tr)
		}
	}
	if err != nil {
		state := provstatus.Failed
		if ctx.Err() != nil {
			state = provstatus.Stopped
		}
		err = mask(fmt.Errorf("download %s: %w", spec.URL, err))
		tr.finish(state, err.Error())
		r.log("Failed to download %s: %v", spec.URL, err)
		return err
	}
	tr.finish(provstatus.Done, "")
	return nil
}

// errPermanent marks an answer no retry can change.
var errPermanent = errors.New("not retried")

type statusError struct {
	code int
	url  string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d %s", redact.URLs(e.url), e.code, http.StatusText(e.code))
}

func (e *statusError) Is(target error) bool {
	if target != errPermanent {
		return false
	}
	switch e.code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		return true
	}
	return false
}

// retry runs attempt up to Retries times with growing delays, logging as
// the reference does. It stops early on a permanent error or ctx's end.
func (r *runner) retry(ctx context.Context, label string, attempt func() error) error {
	delay := r.opts.RetryDelay
	var err error
	for n := 1; n <= r.opts.Retries; n++ {
		r.log("Downloading %s (attempt %d/%d)...", label, n, r.opts.Retries)
		if err = attempt(); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log("Download error on attempt %d: %v", n, err)
		if errors.Is(err, errPermanent) {
			return err
		}
		if n < r.opts.Retries {
			r.log("Retrying in %s...", delay)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay *= time.Duration(r.opts.Backoff)
		}
	}
	r.log("Failed to download %s after %d attempts", label, r.opts.Retries)
	return err
}
