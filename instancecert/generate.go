package instancecert

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// selfSignedValidity: 825 days, the longest validity browsers accept for a
// server certificate.
const selfSignedValidity = 825 * 24 * time.Hour

// The CSR carries the subject the console's signer is known to sign (the
// one the reference image sends), so that the same CSR works there; the
// signed certificate's names are the signer's choice.
var csrSubject = pkix.Name{Country: []string{"US"}, Province: []string{"CA"}, CommonName: "jupyter.vast.ai"}

// NewKey makes the instance key: RSA 2048, the key type the console's
// signer is known to accept.
func NewKey() (crypto.Signer, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
}

// KeyPEM encodes a key as PKCS#8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// splitHosts sorts hosts into DNS names and IP addresses.
func splitHosts(hosts []string) (dns []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// newCSR is the PEM certificate request for key, naming hosts as well as
// 0.0.0.0, the address the reference's request names.
func newCSR(key crypto.Signer, hosts []string) ([]byte, error) {
	dns, ips := splitHosts(hosts)
	ips = append(ips, net.IPv4zero)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: csrSubject, DNSNames: dns, IPAddresses: ips,
	}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// newSelfSigned certifies key for hosts: a server certificate (CA:FALSE,
// serverAuth; Firefox refuses a CA certificate as a server's), valid from an
// hour before now (clocks drift) for 825 days.
func newSelfSigned(key crypto.Signer, hosts []string, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	dns, ips := splitHosts(hosts)
	cn := "localhost"
	if len(dns) > 0 {
		cn = dns[0]
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		usage |= x509.KeyUsageKeyEncipherment // RSA key exchange in TLS 1.2
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Instance Portal (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
