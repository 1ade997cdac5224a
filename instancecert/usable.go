package instancecert

import "time"

// The exit codes of cert-usable, the reference's: a caller that must not
// serve TLS without a sound pair reads anything but 0 as "unusable"; the
// portal, whose only fallback is plain HTTP, may still serve an expired but
// matched pair (3). 3, not 2, because bash itself exits 2 on a syntax
// error, so a broken helper fails closed.
const (
	ExitUsable   = 0
	ExitUnusable = 1 // missing, unparseable, mismatched, a CA, not yet valid
	ExitExpired  = 3 // parsed and matched, but past its NotAfter
)

// ExitCode is v's cert-usable exit code at now.
func (v Verdict) ExitCode(now time.Time) int {
	switch {
	case v.Usable:
		return ExitUsable
	case v.Leaf != nil && v.Key != nil && samePublicKey(v.Leaf.PublicKey, v.Key.Public()) && now.After(v.Leaf.NotAfter):
		return ExitExpired
	}
	return ExitUnusable
}
