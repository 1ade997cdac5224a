package instancecert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var testNow = time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)

func ecKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testCA is a signer on 127.0.0.1 that certifies whatever key a CSR holds,
// the way the console does.
type testCA struct {
	key  crypto.Signer
	cert *x509.Certificate
}

func newTestCA(t testing.TB) *testCA {
	key := ecKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{key: key, cert: cert}
}

// issue certifies pub.
func (ca *testCA) issue(t testing.TB, pub any, notAfter time.Time) []byte {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "instance"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		IPAddresses: nil, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// signerServer answers each request with answer(csr); it counts requests
// and records the last CSR and content type.
type signerServer struct {
	*httptest.Server
	requests    atomic.Int32
	contentType atomic.Value
	query       atomic.Value
}

// signsWhenUp answers 502 while up is false, then a certificate from ca
// for the CSR's key: a signer that is down for a while.
func signsWhenUp(t *testing.T, ca *testCA, up *atomic.Bool) func(http.ResponseWriter, *x509.CertificateRequest) {
	return func(w http.ResponseWriter, csr *x509.CertificateRequest) {
		if !up.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		_, _ = w.Write(ca.issue(t, csr.PublicKey, testNow.Add(time.Hour)))
	}
}

func startSigner(t *testing.T, answer func(w http.ResponseWriter, csr *x509.CertificateRequest)) *signerServer {
	s := &signerServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.contentType.Store(r.Header.Get("Content-Type"))
		s.query.Store(r.URL.RawQuery)
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		block, _ := pem.Decode(body)
		if block == nil || block.Type != "CERTIFICATE REQUEST" {
			http.Error(w, "not a CSR", http.StatusBadRequest)
			return
		}
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil || csr.CheckSignature() != nil {
			http.Error(w, "bad CSR", http.StatusBadRequest)
			return
		}
		answer(w, csr)
	}))
	t.Cleanup(s.Close)
	return s
}

type fixture struct {
	dir, cert, key, state string
}

func newFixture(t *testing.T) fixture {
	dir := t.TempDir()
	return fixture{dir: dir, cert: filepath.Join(dir, "etc", "instance.crt"), key: filepath.Join(dir, "etc", "instance.key"), state: filepath.Join(dir, "state")}
}

func (f fixture) ensurer(signer string) *Ensurer {
	return &Ensurer{
		Config:     Config{CertFile: f.cert, KeyFile: f.key, SignerURL: signer, StateDir: f.state, Hosts: []string{"localhost", "127.0.0.1", "192.0.2.10"}},
		Now:        func() time.Time { return testNow },
		RetryDelay: time.Millisecond,
		NewKey:     func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
	}
}

func (f fixture) writePair(t *testing.T, key crypto.Signer, certPEM []byte) {
	t.Helper()
	keyPEM, err := KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Dir(f.cert), 0o755)
	if err := os.WriteFile(f.key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f fixture) verdict(t *testing.T) Verdict {
	t.Helper()
	v := Check(f.cert, f.key, testNow)
	if !v.Usable {
		t.Fatalf("pair on disk not usable: %s", v.Reason)
	}
	fi, err := os.Stat(f.key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v (%v), want 0600", fi.Mode(), err)
	}
	return v
}

func (f fixture) marker(t *testing.T) string {
	b, _ := os.ReadFile(filepath.Join(f.state, markerName))
	return strings.TrimSpace(string(b))
}

func TestEnsure(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t)
	goodSigner := func(t *testing.T) *signerServer {
		return startSigner(t, func(w http.ResponseWriter, csr *x509.CertificateRequest) {
			_, _ = w.Write(ca.issue(t, csr.PublicKey, testNow.Add(90*24*time.Hour)))
		})
	}

	t.Run("no pair, signer up: signed, and the answer certifies our key", func(t *testing.T) {
		f, s := newFixture(t), goodSigner(t)
		res, err := f.ensurer(s.URL + "/sign_cert/?instance_id=42").Ensure(ctx)
		if err != nil || res.Action != Signed {
			t.Fatalf("%+v, %v", res, err)
		}
		v := f.verdict(t)
		if v.SelfSigned || v.Leaf.CheckSignatureFrom(ca.cert) != nil {
			t.Fatalf("certificate not from the signer: issuer %s", v.Leaf.Issuer)
		}
		if got := s.contentType.Load(); got != "application/octet-stream" {
			t.Errorf("Content-Type = %v", got)
		}
		if got := s.query.Load(); got != "instance_id=42" {
			t.Errorf("query = %v", got)
		}
		if s.requests.Load() != 1 || f.marker(t) != "" {
			t.Errorf("requests %d, marker %q", s.requests.Load(), f.marker(t))
		}
		// The next boot keeps it, asking nobody.
		res, err = f.ensurer(s.URL).Ensure(ctx)
		if err != nil || res.Action != Kept || s.requests.Load() != 1 {
			t.Fatalf("second boot: %+v, %v, %d requests", res, err, s.requests.Load())
		}
	})

	t.Run("signer down: self-signed for our hosts, after a bounded number of tries", func(t *testing.T) {
		f := newFixture(t)
		s := startSigner(t, func(w http.ResponseWriter, _ *x509.CertificateRequest) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		})
		e := f.ensurer(s.URL)
		e.Tries = 4
		res, err := e.Ensure(ctx)
		if err != nil || res.Action != SelfSigned || !strings.Contains(res.Reason, "503 Service Unavailable") {
			t.Fatalf("%+v, %v", res, err)
		}
		if n := s.requests.Load(); n != 4 {
			t.Errorf("%d requests, want 4", n)
		}
		v := f.verdict(t)
		if !v.SelfSigned || v.Leaf.IsCA {
			t.Fatalf("SelfSigned=%v IsCA=%v", v.SelfSigned, v.Leaf.IsCA)
		}
		for _, h := range []string{"localhost", "127.0.0.1", "192.0.2.10"} {
			if err := v.Leaf.VerifyHostname(h); err != nil {
				t.Errorf("%s: %v", h, err)
			}
		}
		if !strings.HasPrefix(f.marker(t), "1 ") {
			t.Errorf("marker %q", f.marker(t))
		}
	})

	t.Run("signer unreachable (closed port)", func(t *testing.T) {
		f := newFixture(t)
		s := startSigner(t, nil)
		url := s.URL
		s.Close()
		res, err := f.ensurer(url + "/?instance_id=secret-id").Ensure(ctx)
		if err != nil || res.Action != SelfSigned || !strings.Contains(res.Reason, "signing failed") {
			t.Fatalf("%+v, %v", res, err)
		}
		if strings.Contains(res.Reason, "secret-id") {
			t.Errorf("the reason repeats the query: %s", res.Reason)
		}
	})

	for name, answer := range map[string]struct {
		write  func(w http.ResponseWriter, csr *x509.CertificateRequest)
		reason string
		tries  int32
	}{
		"a certificate for another key": {
			write: func(w http.ResponseWriter, _ *x509.CertificateRequest) {
				_, _ = w.Write(ca.issue(t, ecKey(t).Public(), testNow.Add(time.Hour)))
			},
			reason: "does not match the key", tries: 1,
		},
		"an expired certificate": {
			write: func(w http.ResponseWriter, csr *x509.CertificateRequest) {
				_, _ = w.Write(ca.issue(t, csr.PublicKey, testNow.Add(-time.Minute)))
			},
			reason: "expired on", tries: 1,
		},
		"an HTML page with 200": {
			write: func(w http.ResponseWriter, _ *x509.CertificateRequest) {
				_, _ = io.WriteString(w, "<html>maintenance</html>")
			},
			reason: "not a certificate", tries: 1,
		},
		"a 400 (not retried)": {
			write:  func(w http.ResponseWriter, _ *x509.CertificateRequest) { http.Error(w, "no", http.StatusBadRequest) },
			reason: "400 Bad Request", tries: 1,
		},
	} {
		t.Run("signer answers "+name+": refused, self-signed", func(t *testing.T) {
			f := newFixture(t)
			s := startSigner(t, answer.write)
			res, err := f.ensurer(s.URL).Ensure(ctx)
			if err != nil || res.Action != SelfSigned || !strings.Contains(res.Reason, answer.reason) {
				t.Fatalf("%+v, %v; want reason %q", res, err, answer.reason)
			}
			if n := s.requests.Load(); n != answer.tries {
				t.Errorf("%d requests, want %d", n, answer.tries)
			}
			if v := f.verdict(t); !v.SelfSigned {
				t.Error("not self-signed")
			}
		})
	}

	// fallbackFirst boots once with the signer down and one try: the pair
	// is then a self-signed fallback. up brings the signer back.
	fallbackFirst := func(t *testing.T) (f fixture, e *Ensurer, s *signerServer, up *atomic.Bool) {
		t.Helper()
		f, up = newFixture(t), new(atomic.Bool)
		s = startSigner(t, signsWhenUp(t, ca, up))
		e = f.ensurer(s.URL)
		e.Tries = 1
		if res, err := e.Ensure(ctx); err != nil || res.Action != SelfSigned {
			t.Fatalf("first boot: %+v, %v", res, err)
		}
		return f, e, s, up
	}

	t.Run("a self-signed fallback is retried on later boots, a bounded number of times", func(t *testing.T) {
		f, e, s, up := fallbackFirst(t)
		first := f.verdict(t)
		for boot := 2; boot <= 3; boot++ {
			res, err := e.Ensure(ctx)
			if err != nil || res.Action != KeptRetry {
				t.Fatalf("boot %d: %+v, %v", boot, res, err)
			}
			if !strings.HasPrefix(f.marker(t), string(rune('0'+boot))+" ") {
				t.Fatalf("boot %d: marker %q", boot, f.marker(t))
			}
		}
		if !f.verdict(t).Leaf.Equal(first.Leaf) {
			t.Fatal("the fallback was replaced while the signer was down")
		}
		// The signer is back, but the retries are used up: kept, nobody asked.
		up.Store(true)
		before := s.requests.Load()
		if res, err := e.Ensure(ctx); err != nil || res.Action != Kept || s.requests.Load() != before {
			t.Fatalf("after the limit: %+v, %v, %d new requests", res, err, s.requests.Load()-before)
		}
	})

	t.Run("a self-signed fallback is replaced once the signer answers, with the same key", func(t *testing.T) {
		f, e, _, up := fallbackFirst(t)
		keyBefore, _ := os.ReadFile(f.key)
		up.Store(true)
		res, err := e.Ensure(ctx)
		if err != nil || res.Action != Signed {
			t.Fatalf("%+v, %v", res, err)
		}
		keyAfter, _ := os.ReadFile(f.key)
		if string(keyBefore) != string(keyAfter) || f.verdict(t).SelfSigned || f.marker(t) != "" {
			t.Fatalf("key changed %v, marker %q", string(keyBefore) != string(keyAfter), f.marker(t))
		}
	})

	t.Run("the user's own self-signed pair is kept", func(t *testing.T) {
		f, s := newFixture(t), goodSigner(t)
		key := ecKey(t)
		own, err := newSelfSigned(key, []string{"example.org"}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		f.writePair(t, key, own)
		res, err := f.ensurer(s.URL).Ensure(ctx)
		if err != nil || res.Action != Kept || s.requests.Load() != 0 {
			t.Fatalf("%+v, %v, %d requests", res, err, s.requests.Load())
		}
	})

	t.Run("a mismatched pair is replaced", func(t *testing.T) {
		f := newFixture(t)
		own, _ := newSelfSigned(ecKey(t), []string{"localhost"}, testNow)
		f.writePair(t, ecKey(t), own)
		res, err := f.ensurer(SignerOff).Ensure(ctx)
		if err != nil || res.Action != SelfSigned || !strings.Contains(res.Reason, "signing is off") {
			t.Fatalf("%+v, %v", res, err)
		}
		f.verdict(t)
		if f.marker(t) != "" {
			t.Errorf("marker %q without a signer", f.marker(t))
		}
	})

	t.Run("the production key is RSA 2048, and a bad config is refused", func(t *testing.T) {
		f := newFixture(t)
		e := f.ensurer("")
		e.NewKey = nil
		if res, err := e.Ensure(ctx); err != nil || res.Action != SelfSigned {
			t.Fatalf("%+v, %v", res, err)
		}
		if k, ok := f.verdict(t).Key.(*rsa.PrivateKey); !ok || k.N.BitLen() != 2048 {
			t.Fatalf("key %T", f.verdict(t).Key)
		}
		e.SignerURL = "ftp://x"
		if _, err := e.Ensure(ctx); err == nil || !strings.Contains(err.Error(), `signer_url: "ftp://x"`) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	key := ecKey(t)
	keyPEM, _ := KeyPEM(key)
	good, _ := newSelfSigned(key, []string{"localhost"}, testNow)
	other, _ := newSelfSigned(ecKey(t), []string{"localhost"}, testNow)
	ca := newTestCA(t)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
	caKeyPEM, _ := KeyPEM(ca.key)
	sec1, _ := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaCert, _ := newSelfSigned(rsaKey, []string{"localhost"}, testNow)

	tests := []struct {
		name       string
		cert, key  []byte
		now        time.Time
		wantReason string // "" means usable
	}{
		{name: "usable (PKCS#8)", cert: good, key: keyPEM},
		{name: "usable (SEC 1 key)", cert: good, key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})},
		{name: "usable (PKCS#1 RSA key)", cert: rsaCert, key: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})},
		{name: "usable with a chain after the leaf", cert: append(append([]byte{}, good...), caPEM...), key: keyPEM},
		{name: "missing key", cert: good, wantReason: "key %s/k: no such file or directory"},
		{name: "missing certificate", key: keyPEM, wantReason: "certificate %s/c: no such file or directory"},
		{name: "empty certificate", cert: []byte{}, key: keyPEM, wantReason: "no PEM certificate"},
		{name: "HTML as certificate", cert: []byte("<html>error</html>"), key: keyPEM, wantReason: "no PEM certificate"},
		{name: "text after the certificate", cert: append(append([]byte{}, good...), "trailing"...), key: keyPEM, wantReason: "text after the certificates"},
		{name: "key as certificate", cert: keyPEM, key: keyPEM, wantReason: `unexpected PEM block "PRIVATE KEY"`},
		{name: "other key", cert: other, key: keyPEM, wantReason: "does not match the key"},
		{name: "expired", cert: good, key: keyPEM, now: testNow.Add(900 * 24 * time.Hour), wantReason: "expired on 2029-"},
		{name: "not yet valid", cert: good, key: keyPEM, now: testNow.Add(-2 * time.Hour), wantReason: "not valid before"},
		{name: "a CA certificate", cert: caPEM, key: caKeyPEM, wantReason: "is a CA certificate"},
		{name: "garbage key", cert: good, key: []byte("nope"), wantReason: "no PEM private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, k := filepath.Join(dir, "c"), filepath.Join(dir, "k")
			_ = os.Remove(c)
			_ = os.Remove(k)
			if tt.cert != nil {
				_ = os.WriteFile(c, tt.cert, 0o644)
			}
			if tt.key != nil {
				_ = os.WriteFile(k, tt.key, 0o600)
			}
			now := tt.now
			if now.IsZero() {
				now = testNow
			}
			v := Check(c, k, now)
			want := tt.wantReason
			if strings.Contains(want, "%s") {
				want = strings.ReplaceAll(want, "%s", dir)
			}
			if want == "" {
				if !v.Usable || v.Reason != "" {
					t.Fatalf("not usable: %s", v.Reason)
				}
				return
			}
			if v.Usable || !strings.Contains(v.Reason, want) {
				t.Fatalf("usable=%v reason %q, want %q", v.Usable, v.Reason, want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		wantSigner string
		wantErr    string
	}{
		{name: "defaults: no instance id, no signer", cfg: Config{}},
		{name: "instance id: the console", cfg: Config{InstanceID: "123 4"}, wantSigner: DefaultConsoleSigner + "?instance_id=123+4"},
		{name: "explicit URL wins", cfg: Config{InstanceID: "1", SignerURL: "http://127.0.0.1:9/s"}, wantSigner: "http://127.0.0.1:9/s"},
		{name: "off wins over the id", cfg: Config{InstanceID: "1", SignerURL: "OFF"}},
		{name: "bad URL", cfg: Config{SignerURL: "console.vast.ai"}, wantErr: `signer_url: "console.vast.ai": want an http(s) URL or "off"`},
		{name: "bad host", cfg: Config{Hosts: []string{"a b"}}, wantErr: `hosts: "a b" is not a host name`},
		{name: "same file", cfg: Config{CertFile: "/x", KeyFile: "/x"}, wantErr: "key_file: /x is also cert_file"},
		{name: "negative retries", cfg: Config{MaxSelfSignedRetries: -1}, wantErr: "max_self_signed_retries: -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.FillDefaults()
			if c.CertFile != DefaultCertFile && tt.cfg.CertFile == "" {
				t.Errorf("cert_file default %q", c.CertFile)
			}
			err := c.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Signer(); got != tt.wantSigner {
				t.Errorf("signer %q, want %q", got, tt.wantSigner)
			}
		})
	}
}

// FuzzParseChain: a signer's answer either errors or gives certificates
// that re-encode to the same DER; never a chain with text or other blocks.
func FuzzParseChain(f *testing.F) {
	good, _ := newSelfSigned(ecKey(f), []string{"localhost"}, testNow)
	f.Add(good)
	f.Add(append(append([]byte{}, good...), good...))
	f.Add([]byte("<html>502</html>"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		chain, err := parseChain(data)
		if err != nil {
			return
		}
		if len(chain) == 0 {
			t.Fatal("empty chain without an error")
		}
		var again []byte
		for _, c := range chain {
			again = append(again, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		chain2, err := parseChain(again)
		if err != nil || len(chain2) != len(chain) {
			t.Fatalf("re-encoded chain: %v", err)
		}
	})
}

// FuzzParseKey: a key file either errors or gives a key whose PKCS#8
// encoding parses back to the same public key.
func FuzzParseKey(f *testing.F) {
	k, _ := KeyPEM(ecKey(f))
	f.Add(k)
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := parseKey(data)
		if err != nil {
			return
		}
		enc, err := KeyPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseKey(enc)
		if err != nil || !samePublicKey(back.Public(), key.Public()) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// TestSignRefusesCrossHostRedirect: a signer that answers 307 to another
// host (here another local server) does not get the CSR re-posted there; a
// redirect within the signer's own host is still followed.
func TestSignRefusesCrossHostRedirect(t *testing.T) {
	ca := newTestCA(t)
	var up atomic.Bool
	up.Store(true)
	elsewhere := startSigner(t, signsWhenUp(t, ca, &up))
	redirect := func(to string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/moved" {
				http.Redirect(w, r, to+"/sign?id=1", http.StatusTemporaryRedirect)
				return
			}
			elsewhere.Config.Handler.ServeHTTP(w, r)
		}))
		t.Cleanup(s.Close)
		return s
	}
	key := ecKey(t)
	csr, err := newCSR(key, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	cross := redirect(elsewhere.URL)
	before := elsewhere.requests.Load()
	_, err = Sign(context.Background(), cross.Client(), cross.URL+"/moved", csr, key, testNow, 3, time.Millisecond)
	if !errors.Is(err, errOtherHost) {
		t.Fatalf("cross-host 307: err = %v, want %v", err, errOtherHost)
	}
	if n := elsewhere.requests.Load() - before; n != 0 {
		t.Fatalf("the other host got %d requests, want 0", n)
	}

	var self *httptest.Server
	self = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, self.URL+"/sign", http.StatusTemporaryRedirect)
			return
		}
		elsewhere.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(self.Close)
	if _, err := Sign(context.Background(), self.Client(), self.URL+"/moved", csr, key, testNow, 1, time.Millisecond); err != nil {
		t.Fatalf("same-host 307: %v", err)
	}
}
