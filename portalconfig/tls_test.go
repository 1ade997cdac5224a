package portalconfig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for key, valid over [from, to].
func writePair(t *testing.T, dir, name string, key crypto.Signer, from, to time.Time) (string, string) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, NotBefore: from, NotAfter: to, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestCheckCertPair(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	rsaC, rsaK := writePair(t, dir, "rsa", rsaKey, now.Add(-time.Hour), now.Add(time.Hour))
	ecC, ecK := writePair(t, dir, "ec", ecKey, now.Add(-time.Hour), now.Add(time.Hour))
	edC, edK := writePair(t, dir, "ed", edKey, now.Add(-time.Hour), now.Add(time.Hour))
	oldC, oldK := writePair(t, dir, "old", ecKey, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	futC, futK := writePair(t, dir, "fut", ecKey, now.Add(24*time.Hour), now.Add(48*time.Hour))
	_, otherK := writePair(t, dir, "other", otherKey, now.Add(-time.Hour), now.Add(time.Hour))
	garbage := filepath.Join(dir, "garbage.crt")
	_ = os.WriteFile(garbage, []byte("not pem"), 0o644)

	tests := []struct {
		name       string
		cert, key  string
		usable     bool
		warnSubstr string
	}{
		{"rsa", rsaC, rsaK, true, ""},
		{"ecdsa", ecC, ecK, true, ""},
		{"ed25519", edC, edK, true, ""},
		{"expired still served", oldC, oldK, true, "expired"},
		{"not yet valid still served", futC, futK, true, "not valid before"},
		{"mismatched key", ecC, otherK, false, "private key does not match public key"},
		{"missing cert", filepath.Join(dir, "nope.crt"), ecK, false, "no such file"},
		{"missing key", ecC, filepath.Join(dir, "nope.key"), false, "no such file"},
		{"garbage cert", garbage, ecK, false, "garbage.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checkCertPair(tt.cert, tt.key, now)
			if c.Usable != tt.usable {
				t.Fatalf("usable = %v (%s), want %v", c.Usable, c.Warning, tt.usable)
			}
			if tt.warnSubstr == "" && c.Warning != "" {
				t.Errorf("unexpected warning %q", c.Warning)
			}
			if !strings.Contains(c.Warning, tt.warnSubstr) {
				t.Errorf("warning = %q, want %q", c.Warning, tt.warnSubstr)
			}
		})
	}
}
