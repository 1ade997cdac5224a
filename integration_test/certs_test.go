package integration_test

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// selfSignedDER is a certificate for localhost and 127.0.0.1 signed by its
// own key, valid from notBefore to notAfter.
func selfSignedDER(t testing.TB, key crypto.Signer, notBefore, notAfter time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: notBefore, NotAfter: notAfter,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// writePair writes a self-signed certificate and its key, valid from
// notBefore to notAfter, as PEM files (the instance pair's format), and
// returns the certificate.
func writePair(t testing.TB, certFile, keyFile string, key crypto.Signer, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	der := selfSignedDER(t, key, notBefore, notAfter)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	mustWrite(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// genPair writes a self-signed pair for 127.0.0.1/localhost, valid now.
func genPair(t *testing.T, certFile, keyFile string, key crypto.Signer) *x509.Certificate {
	t.Helper()
	return writePair(t, certFile, keyFile, key, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}
