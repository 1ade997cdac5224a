package instancecert

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Actions Ensure reports.
const (
	Kept       = "kept"             // the pair on disk is usable and stays
	Signed     = "signed"           // a new pair, certified by the signer
	SelfSigned = "self-signed"      // a new pair, certified by its own key
	KeptRetry  = "kept-self-signed" // signing failed again; the fallback on disk stays
)

// Result says what Ensure did.
type Result struct {
	Action string
	// Reason: why the pair on disk was replaced, and why signing failed
	// when it did.
	Reason   string
	NotAfter time.Time
}

// markerName is the file under StateDir that records a self-signed
// fallback: "<boots> <sha256 of the certificate>". The hash ties it to the
// certificate we wrote, so a certificate the user puts in its place is
// never replaced.
const markerName = "instance-cert-self-signed"

// Ensurer runs one boot's certificate check. The zero values of the
// optional fields are the production settings.
type Ensurer struct {
	Config
	// Client posts the CSR; nil means a client with a 20 s timeout.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Tries bounds the POSTs of the one signing attempt (default 3), and
	// RetryDelay is the first wait between them (default 2 s, then doubled).
	Tries      int
	RetryDelay time.Duration
	// Log receives one line per decision; nil discards them.
	Log func(string)
	// NewKey makes a key; nil means NewKey (RSA 2048). Tests use a faster one.
	NewKey func() (crypto.Signer, error)
}

// Ensure keeps a usable pair, or replaces a missing or unusable one: a new
// key, one signing attempt (with bounded retry) when a signer is
// configured, else or on failure a self-signed certificate. While a
// self-signed fallback serves, later boots ask the signer again, until
// MaxSelfSignedRetries boots in all have asked. The key is 0600 from its first byte; both
// files are replaced by rename.
func (e *Ensurer) Ensure(ctx context.Context) (Result, error) {
	e.FillDefaults()
	if err := e.Validate(); err != nil {
		return Result{}, err
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	log := func(format string, args ...any) {
		if e.Log != nil {
			e.Log(fmt.Sprintf(format, args...))
		}
	}
	signer := e.Signer()
	v := Check(e.CertFile, e.KeyFile, now())
	boots, ours := e.readMarker(v)

	retry := v.Usable && v.SelfSigned && signer != "" && ours && boots < e.MaxSelfSignedRetries
	if v.Usable && !retry {
		return Result{Action: Kept, NotAfter: v.Leaf.NotAfter}, nil
	}

	key := v.Key
	reason := v.Reason
	if retry {
		reason = fmt.Sprintf("the certificate is a self-signed fallback (boot %d of %d that retries the signer)", boots+1, e.MaxSelfSignedRetries)
	} else {
		newKey := NewKey
		if e.NewKey != nil {
			newKey = e.NewKey
		}
		var err error
		if key, err = newKey(); err != nil {
			return Result{}, fmt.Errorf("generating the key: %w", err)
		}
	}
	if retry {
		log("instance certificate: %s", reason)
	} else {
		log("instance certificate: a new pair is needed: %s", reason)
	}

	signErr := "signing is off (no instance id, or INSTANCE_CERT_SIGNER_URL=off)"
	if signer != "" {
		chain, err := e.sign(ctx, signer, key, now())
		if err == nil {
			if err := e.writePair(key, chain); err != nil {
				return Result{}, err
			}
			e.removeMarker()
			c := Check(e.CertFile, e.KeyFile, now())
			return Result{Action: Signed, Reason: reason, NotAfter: c.Leaf.NotAfter}, nil
		}
		signErr = "signing failed: " + err.Error()
	}
	log("instance certificate: %s", signErr)

	if retry {
		// The fallback on disk still serves; count the boot and keep it.
		e.writeMarker(boots+1, v.Leaf.Raw)
		return Result{Action: KeptRetry, Reason: signErr, NotAfter: v.Leaf.NotAfter}, nil
	}
	certPEM, err := newSelfSigned(key, e.Hosts, now())
	if err != nil {
		return Result{}, fmt.Errorf("self-signing: %w", err)
	}
	if err := e.writePair(key, certPEM); err != nil {
		return Result{}, err
	}
	c := Check(e.CertFile, e.KeyFile, now())
	if signer != "" {
		e.writeMarker(1, c.Leaf.Raw)
	} else {
		e.removeMarker()
	}
	return Result{Action: SelfSigned, Reason: signErr, NotAfter: c.Leaf.NotAfter}, nil
}

func (e *Ensurer) sign(ctx context.Context, signer string, key crypto.Signer, now time.Time) ([]byte, error) {
	csr, err := newCSR(key, e.Hosts)
	if err != nil {
		return nil, err
	}
	client := e.Client
	if client == nil {
		client = &http.Client{Timeout: 20 * time.Second}
	}
	tries, delay := e.Tries, e.RetryDelay
	if tries == 0 {
		tries = 3
	}
	if delay == 0 {
		delay = 2 * time.Second
	}
	return Sign(ctx, client, signer, csr, key, now, tries, delay)
}

// writePair writes the key (0600) and then the certificate (0644), each
// through a temporary file in its directory renamed over the target. A
// crash between the two leaves a mismatched pair, which the next boot
// replaces.
func (e *Ensurer) writePair(key crypto.Signer, certPEM []byte) error {
	keyPEM, err := KeyPEM(key)
	if err != nil {
		return err
	}
	if err := writeFile(e.KeyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("writing the key: %w", err)
	}
	if err := writeFile(e.CertFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("writing the certificate: %w", err)
	}
	return nil
}

// writeFile replaces path by renaming a temporary file over it. The
// temporary file is created 0600 (os.CreateTemp), so a key is never
// readable by others, even half written.
func writeFile(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		_ = os.Remove(name)
	}
	return err
}

func (e *Ensurer) markerPath() string {
	if e.StateDir == "" {
		return ""
	}
	return filepath.Join(e.StateDir, markerName)
}

// readMarker returns the boots counted so far, and whether the marker is
// about the certificate now on disk.
func (e *Ensurer) readMarker(v Verdict) (int, bool) {
	p := e.markerPath()
	if p == "" {
		return 0, false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	count, sum, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 {
		return 0, false
	}
	if v.Leaf == nil || fingerprint(v.Leaf.Raw) != sum {
		return 0, false
	}
	return n, true
}

func (e *Ensurer) writeMarker(boots int, certDER []byte) {
	if p := e.markerPath(); p != "" {
		_ = os.MkdirAll(e.StateDir, 0o700)
		_ = os.WriteFile(p, []byte(fmt.Sprintf("%d %s\n", boots, fingerprint(certDER))), 0o600)
	}
}

func (e *Ensurer) removeMarker() {
	if p := e.markerPath(); p != "" {
		_ = os.Remove(p)
	}
}

func fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}
