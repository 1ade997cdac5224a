package vastauth

import (
	"crypto/sha256"
	"crypto/subtle"
)

// SecretSet holds secrets as SHA-256 digests and compares candidates with
// them in constant time. Fixed-length digests hide the secrets' lengths,
// and every digest is compared, so the time does not depend on which
// secret matched or how much of one did.
type SecretSet struct {
	digests [][sha256.Size]byte
}

// NewSecretSet holds the non-empty values.
func NewSecretSet(values []string) *SecretSet {
	s := &SecretSet{}
	for _, v := range values {
		if v != "" {
			s.digests = append(s.digests, sha256.Sum256([]byte(v)))
		}
	}
	return s
}

// Len is the number of secrets held.
func (s *SecretSet) Len() int { return len(s.digests) }

// Match reports whether candidate is one of the secrets.
func (s *SecretSet) Match(candidate string) bool {
	d := sha256.Sum256([]byte(candidate))
	return s.matchDigest(&d)
}

func (s *SecretSet) matchBytes(candidate []byte) bool {
	d := sha256.Sum256(candidate)
	return s.matchDigest(&d)
}

func (s *SecretSet) matchDigest(d *[sha256.Size]byte) bool {
	match := 0
	for i := range s.digests {
		match |= subtle.ConstantTimeCompare(d[:], s.digests[i][:])
	}
	return match == 1
}
