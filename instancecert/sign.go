package instancecert

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// errPermanent marks an answer a retry cannot change.
var errPermanent = errors.New("not retried")

// Sign posts csrPEM to signerURL and returns the PEM chain of the answer,
// but only if its leaf certifies key and is valid at now. It makes at most
// tries requests, waiting delay, then twice as long, between them; only
// transport errors, 429 and 5xx answers are retried. Each request is bounded
// by the client's timeout and the whole by ctx.
func Sign(ctx context.Context, client *http.Client, signerURL string, csrPEM []byte, key crypto.Signer, now time.Time, tries int, delay time.Duration) ([]byte, error) {
	if tries < 1 {
		tries = 1
	}
	var last error
	for i := 0; i < tries; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%w (after: %v)", ctx.Err(), last)
			case <-time.After(delay):
			}
			delay *= 2
		}
		chain, err := signOnce(ctx, client, signerURL, csrPEM)
		if err == nil {
			return checkAnswer(chain, key, now)
		}
		last = err
		if errors.Is(err, errPermanent) {
			break
		}
	}
	return nil, last
}

func signOnce(ctx context.Context, client *http.Client, signerURL string, csrPEM []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, signerURL, bytes.NewReader(csrPEM))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	sameHost := *client
	sameHost.CheckRedirect = refuseOtherHosts
	resp, err := sameHost.Do(req)
	if err != nil {
		return nil, redact(err, signerURL)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPEM+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("signer answered %s", resp.Status)
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
			err = fmt.Errorf("%w: %w", errPermanent, err)
		}
		return nil, err
	}
	if len(body) > maxPEM {
		return nil, fmt.Errorf("%w: signer's answer is larger than %d bytes", errPermanent, maxPEM)
	}
	return body, nil
}

// errOtherHost refuses a redirect to another scheme, host or port: a 307 or
// 308 re-posts the CSR (with the instance id in the query) to wherever it
// points, so the signer may only move us within itself.
var errOtherHost = errors.New("signer redirected to another host")

// refuseOtherHosts is the signer client's CheckRedirect: it follows at most
// 10 redirects, all to the first request's scheme and host (port included).
func refuseOtherHosts(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return fmt.Errorf("%w: %w", errPermanent, errOtherHost)
	}
	if len(via) >= 10 {
		return fmt.Errorf("%w: stopped after 10 redirects", errPermanent)
	}
	return nil
}

// checkAnswer accepts a signer's answer only if it is a PEM chain whose
// leaf certifies our key now. A certificate for another key would pass a
// parse-only check and leave a pair that never matches.
func checkAnswer(body []byte, key crypto.Signer, now time.Time) ([]byte, error) {
	chain, err := parseChain(body)
	if err != nil {
		return nil, fmt.Errorf("signer's answer is not a certificate: %v", err)
	}
	if reason := certifies(chain[0], key, now); reason != "" {
		return nil, fmt.Errorf("signer's certificate %s", reason)
	}
	return body, nil
}

// redact drops the URL's query (which carries the instance id) from a
// transport error.
func redact(err error, signerURL string) error {
	base, _, _ := strings.Cut(signerURL, "?")
	return redacted{msg: strings.ReplaceAll(err.Error(), signerURL, base), err: err}
}

// redacted is an error whose text has the URL's query removed; it still
// unwraps to the original, so errors.Is sees errPermanent and errOtherHost.
type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }
