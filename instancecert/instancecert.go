// Package instancecert makes sure the instance has a usable TLS pair
// (/etc/instance.crt and /etc/instance.key) at boot, without openssl: it
// checks the pair on disk, and when it is missing or unusable generates a
// key and a CSR, asks a signer (the provider's console) to sign it, accepts
// the answer only if it certifies that key, and otherwise falls back to a
// self-signed certificate. `caddy portal cert ensure` runs it.
//
// It never imports Caddy.
//
// "The reference" (or "the reference image") in this package means Vast.ai's
// public base image, whose portal this one replaces: its Python Caddyfile
// generator, boot scripts and the supervisor wrapper scripts its templates
// are written against. Where it is named, we keep its observable behaviour.
package instancecert

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/instanceportal/portal/confdecl"
)

// Default paths and limits.
const (
	DefaultCertFile = "/etc/instance.crt"
	DefaultKeyFile  = "/etc/instance.key"
	// DefaultConsoleSigner is the provider console's signing API; the
	// instance id is added as ?instance_id=. It is what the reference image
	// posts its CSR to.
	DefaultConsoleSigner = "https://console.vast.ai/api/v0/sign_cert/"
	// SignerOff disables signing: the pair is self-signed.
	SignerOff = "off"
	// DefaultMaxSelfSignedRetries is how many boots in all (the one that
	// fell back included) ask the signer before a self-signed fallback is
	// kept for good.
	DefaultMaxSelfSignedRetries = 3
)

// Config says where the pair lives and who signs it. Every field has a
// default; Default() holds them and FillDefaults applies them.
type Config struct {
	// CertFile is the certificate (PEM, leaf first, then any chain).
	// Default: /etc/instance.crt
	CertFile string `json:"cert_file,omitempty"`
	// KeyFile is the private key (PEM), written 0600. Default: /etc/instance.key
	KeyFile string `json:"key_file,omitempty"`
	// SignerURL receives the CSR as a POST (Content-Type
	// application/octet-stream, PEM body) and answers with the PEM
	// certificate; "off" never asks anyone. Empty means the console's
	// sign_cert API with ?instance_id=InstanceID, or off without an
	// instance id. Default: none
	SignerURL string `json:"signer_url,omitempty"`
	// InstanceID identifies the instance to the default signer (the
	// container label without its "C." prefix). Default: none
	InstanceID string `json:"instance_id,omitempty"`
	// Hosts are the DNS names and IP addresses the self-signed certificate
	// is for (the CSR names them too). Default: ["localhost","127.0.0.1"]
	Hosts []string `json:"hosts,omitempty"`
	// StateDir keeps the count of boots that fell back to a self-signed
	// certificate, so that a later boot retries the signer a bounded
	// number of times. Empty: no retries on later boots. Default: none
	StateDir string `json:"state_dir,omitempty"`
	// MaxSelfSignedRetries is how many boots in all ask the signer while a
	// self-signed fallback serves, the boot that made it included. Default: 3
	MaxSelfSignedRetries int `json:"max_self_signed_retries,omitempty"`
}

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{
		CertFile:             DefaultCertFile,
		KeyFile:              DefaultKeyFile,
		Hosts:                []string{"localhost", "127.0.0.1"},
		MaxSelfSignedRetries: DefaultMaxSelfSignedRetries,
	}
}

// FillDefaults sets each empty field to its default.
func (c *Config) FillDefaults() { confdecl.FillDefaults(c, Default()) }

// Signer is the URL the CSR goes to, or "" when signing is off.
func (c *Config) Signer() string {
	switch {
	case strings.EqualFold(c.SignerURL, SignerOff):
		return ""
	case c.SignerURL != "":
		return c.SignerURL
	case c.InstanceID == "":
		return ""
	default:
		return DefaultConsoleSigner + "?instance_id=" + url.QueryEscape(c.InstanceID)
	}
}

// Validate checks the configuration; messages name the JSON field.
func (c *Config) Validate() error {
	var errs []error
	if c.CertFile == "" {
		errs = append(errs, errors.New("cert_file: empty"))
	}
	if c.KeyFile == "" {
		errs = append(errs, errors.New("key_file: empty"))
	}
	if c.CertFile != "" && c.CertFile == c.KeyFile {
		errs = append(errs, fmt.Errorf("key_file: %s is also cert_file", c.KeyFile))
	}
	if s := c.SignerURL; s != "" && !strings.EqualFold(s, SignerOff) {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("signer_url: %q: want an http(s) URL or %q", s, SignerOff))
		}
	}
	for _, h := range c.Hosts {
		if !validHost(h) {
			errs = append(errs, fmt.Errorf("hosts: %q is not a host name or IP address", h))
		}
	}
	if c.MaxSelfSignedRetries < 0 {
		errs = append(errs, fmt.Errorf("max_self_signed_retries: %d is negative", c.MaxSelfSignedRetries))
	}
	return errors.Join(errs...)
}

// validHost accepts what may go into a certificate's subjectAltName: an IP
// address or a DNS name (letters, digits, '-', '.', a leading "*.").
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if parseIP(h) != nil {
		return true
	}
	name := strings.TrimPrefix(h, "*.")
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}
