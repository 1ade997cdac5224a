package instancecert

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"time"
)

// Verdict is what Check found on disk.
type Verdict struct {
	// Usable: both files parse, the key belongs to the certificate, and the
	// certificate is valid now.
	Usable bool
	// Reason says why the pair is not usable ("" when it is).
	Reason string
	// SelfSigned: the leaf is signed by its own key.
	SelfSigned bool
	// Leaf is the parsed certificate, when it parsed.
	Leaf *x509.Certificate
	// Key is the parsed private key, when it parsed.
	Key crypto.Signer
}

// maxPEM bounds what is read from a certificate or key file (and from a
// signer's answer): a real chain is a few kilobytes.
const maxPEM = 1 << 20

// Check reads the pair and judges it at time now. This is the strict
// reading for boot: an expired pair is not usable, because a fresh one
// costs milliseconds (the portal itself, at serve time, keeps serving an
// expired pair rather than fall back to plain HTTP).
func Check(certFile, keyFile string, now time.Time) Verdict {
	keyPEM, err := readSmall(keyFile)
	if err != nil {
		return Verdict{Reason: fmt.Sprintf("key %s: %v", keyFile, err)}
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return Verdict{Reason: fmt.Sprintf("key %s: %v", keyFile, err)}
	}
	certPEM, err := readSmall(certFile)
	if err != nil {
		return Verdict{Key: key, Reason: fmt.Sprintf("certificate %s: %v", certFile, err)}
	}
	chain, err := parseChain(certPEM)
	if err != nil {
		return Verdict{Key: key, Reason: fmt.Sprintf("certificate %s: %v", certFile, err)}
	}
	v := Verdict{Key: key, Leaf: chain[0], SelfSigned: isSelfSigned(chain[0])}
	if reason := certifies(chain[0], key, now); reason != "" {
		v.Reason = fmt.Sprintf("certificate %s: %s", certFile, reason)
		return v
	}
	v.Usable = true
	return v
}

// certifies explains why leaf cannot serve with key at now; "" if it can.
func certifies(leaf *x509.Certificate, key crypto.Signer, now time.Time) string {
	if !samePublicKey(leaf.PublicKey, key.Public()) {
		return "does not match the key"
	}
	if now.After(leaf.NotAfter) {
		return "expired on " + leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	if now.Before(leaf.NotBefore) {
		return "not valid before " + leaf.NotBefore.UTC().Format(time.RFC3339)
	}
	if leaf.IsCA {
		return "is a CA certificate (browsers refuse one as a server certificate)"
	}
	return ""
}

// parseChain reads the CERTIFICATE blocks of a PEM bundle, leaf first.
// Anything else in the input (text around the blocks, other block types) is
// an error: a signer's error page must not pass for a certificate.
func parseChain(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("text after the certificates")
	}
	return chain, nil
}

// parseKey reads a PEM private key: PKCS#8, PKCS#1 (RSA) or SEC 1 (EC).
func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

// samePublicKey compares keys through their DER encoding, which covers
// every type x509 knows.
func samePublicKey(a, b any) bool {
	da, err1 := x509.MarshalPKIXPublicKey(a)
	db, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}

// isSelfSigned: issued by its own subject and signed by its own key.
// (CheckSignatureFrom would refuse a non-CA parent, and a server
// certificate is not a CA.)
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// readSmall reads a file of at most maxPEM bytes.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPEM {
		return nil, fmt.Errorf("larger than %d bytes", maxPEM)
	}
	return data, nil
}

func parseIP(s string) net.IP { return net.ParseIP(s) }
