package portalconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"
)

// CertCheck is the verdict on the instance certificate pair.
type CertCheck struct {
	// Usable: both files parse and the key belongs to the certificate.
	Usable bool
	// Warning explains why the pair is unusable, or what is wrong with a
	// usable one (expired, not yet valid). Empty when all is well.
	Warning string
	// NotAfter is the leaf's expiry, when it parsed.
	NotAfter time.Time
}

// checkCertPair loads the PEM pair and checks that the private key matches
// the certificate (tls.X509KeyPair does so for RSA, ECDSA and Ed25519). An
// expired but matching pair stays usable — the alternative is plaintext —
// with a warning.
func checkCertPair(certFile, keyFile string, now time.Time) CertCheck {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return CertCheck{Warning: fmt.Sprintf("certificate %s: %v", certFile, unwrapPathErr(err))}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return CertCheck{Warning: fmt.Sprintf("key %s: %v", keyFile, unwrapPathErr(err))}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return CertCheck{Warning: fmt.Sprintf("certificate %s and key %s: %v", certFile, keyFile, err)}
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return CertCheck{Warning: fmt.Sprintf("certificate %s: %v", certFile, err)}
	}
	c := CertCheck{Usable: true, NotAfter: leaf.NotAfter}
	switch {
	case now.After(leaf.NotAfter):
		c.Warning = fmt.Sprintf("certificate %s expired on %s; serving it anyway (browsers will warn)", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		c.Warning = fmt.Sprintf("certificate %s is not valid before %s; serving it anyway (browsers will warn)", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return c
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
