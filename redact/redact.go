// Package redact hides credentials in text that is shown or logged: URLs
// with user information or a query string (a PROVISIONING_SCRIPT or
// manifest URL, a download source). Every place that shows or logs such a
// string goes through URLs, so that one rule decides what is hidden.
package redact

import (
	"regexp"
	"strings"
)

// urlSecrets matches the parts of a URL that carry credentials: user
// information before '@', and the query string.
var urlSecrets = regexp.MustCompile(`(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s@]*@|\?[^\s]*`)

// URLs hides credentials that URLs in s may carry (https://user:pass@host/…,
// …?token=…): user information becomes "…@" and a query string "?…".
func URLs(s string) string {
	return urlSecrets.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "?") {
			return "?…"
		}
		return m[:strings.Index(m, "://")+3] + "…@"
	})
}
