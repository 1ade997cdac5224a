// Package redact hides credentials in text that is shown or logged: URLs
// with user information or a query string (a PROVISIONING_SCRIPT or
// manifest URL, a download source). Every place that shows or logs such a
// string goes through URLs, so that one rule decides what is hidden.
package redact

import (
	"regexp"
	"strings"
	"unicode"
)

// urlSecrets matches the parts of a URL that carry credentials:
//   - user information before '@': after a scheme (https://u:p@h), after
//     a scheme-relative "//" (//u:p@h), or bare user:password@host;
//   - the query string, plain (?token=…) or percent-encoded (%3Ftoken%3D…);
//   - percent-encoded user information (https%3A%2F%2Fu%3Ap%40h).
//
// A bare user@host (an e-mail address, git@github.com) has no password and
// is kept.
var urlSecrets = regexp.MustCompile(`(?i)` +
	`(?:\b[a-z][a-z0-9+.-]*:)?//[^/\s@]*@` + // scheme://userinfo@ or //userinfo@
	`|%3A%2F%2F[^\s/]*?%40` + // encoded ://userinfo@
	`|\b[^\s/@:?#'"=]+:[^\s/@]+@` + // user:password@ without a scheme
	`|\?[^\s]*` + // query string
	`|%3F[^\s]*`) // encoded query string

// URLs hides credentials that URLs in s may carry (https://user:pass@host/…,
// …?token=…, and the forms above): user information becomes "…@" and a
// query string "?…". Bidirectional controls and zero-width characters are
// dropped, so that what is shown reads as what it is (U+202E reverses the
// text after it).
func URLs(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Bidi_Control, r) || r >= 0x200b && r <= 0x200d || r == 0x2060 || r == 0xfeff {
			return -1
		}
		return r
	}, s)
	return urlSecrets.ReplaceAllStringFunc(s, func(m string) string {
		lower := strings.ToLower(m)
		switch {
		case strings.HasPrefix(m, "?"), strings.HasPrefix(lower, "%3f"):
			return "?…"
		case strings.HasPrefix(lower, "%3a%2f%2f"):
			return m[:9] + "…@"
		case strings.Contains(m, "//"):
			return m[:strings.Index(m, "//")+2] + "…@"
		}
		return "…@"
	})
}
