package vastauth

import (
	"net/url"
	"strings"
)

// Redacted replaces what a log must not show.
const Redacted = "REDACTED"

// Redactor hides our credentials in text bound for a log, by name and by
// value: the value of every parameter that names one of our credentials
// however it is spelled, and every part that carries a secret whatever it
// is called.
type Redactor struct {
	set *SecretSet
}

// NewRedactor redacts the given secrets (empty ones are ignored) and the
// parameters named token and portal_handoff.
func NewRedactor(secrets []string) *Redactor {
	return &Redactor{set: NewSecretSet(secrets)}
}

// maxRedactDecode bounds the rounds of percent-decoding applied to a name
// or value: "%2523token" needs two.
const maxRedactDecode = 3

// unescapeRounds percent-decodes s until it stops changing, fails to
// decode, or maxRedactDecode rounds are done: a credential hidden behind
// layers of encoding is still recognised.
func unescapeRounds(s string) string {
	for range maxRedactDecode {
		d, err := url.QueryUnescape(s)
		if err != nil || d == s {
			break
		}
		s = d
	}
	return s
}

// credentialName reports whether a parameter name, as written in a URL,
// names one of our credentials: decoded (repeatedly), lower-cased, without
// leading punctuation ("#token", "?token") and without trailing "[…]"
// ("token[]", "token[0]"), it is token or portal_handoff.
func credentialName(raw string) bool {
	k := strings.ToLower(strings.TrimSpace(unescapeRounds(raw)))
	k = strings.TrimLeft(k, "#?&;/. ")
	for strings.HasSuffix(k, "]") {
		i := strings.LastIndexByte(k, '[')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return k == TokenParam || k == HandoffParam
}

// nestedCredential reports whether a value, once decoded, holds another
// parameter list that names a credential ("1#token=x" from "1%23token=x").
func nestedCredential(v string) bool {
	d := unescapeRounds(v)
	if d == v && !strings.ContainsAny(v, "=") {
		return false
	}
	for _, pair := range strings.FieldsFunc(d, func(r rune) bool { return strings.ContainsRune("&;#?/ ", r) }) {
		if k, _, ok := strings.Cut(pair, "="); ok && credentialName(k) {
			return true
		}
	}
	return false
}

// URI redacts a request URI (path and query, as the access log records
// it) or a whole URL (a Referer): the query and the path's ";" parameters
// are split into name=value pairs at '&' and ';'; a pair whose name is a
// credential's (credentialName), or whose value holds one in encoded form
// ("%23token=…"), or whose decoded value carries a secret, has its value
// replaced by REDACTED; a pair or path segment whose name carries a secret
// is replaced whole. Everything else is kept byte for byte.
func (r *Redactor) URI(u string) string {
	if u == "" {
		return u
	}
	var prefix string
	rest := u
	if i := strings.Index(rest, "://"); i > 0 && !strings.ContainsAny(rest[:i], "/?#") {
		// An absolute URL: keep scheme and authority (redacting user info).
		j := strings.IndexAny(rest[i+3:], "/?#")
		if j < 0 {
			j = len(rest) - i - 3
		}
		prefix = rest[:i+3+j]
		if at := strings.LastIndexByte(prefix, '@'); at > i {
			prefix = prefix[:i+3] + Redacted + prefix[at:]
		}
		rest = rest[i+3+j:]
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	var b strings.Builder
	b.Grow(len(u) + 16)
	b.WriteString(prefix)
	for i, seg := range strings.Split(path, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		name, params, hasParams := strings.Cut(seg, ";")
		if r.carries(name) {
			b.WriteString(Redacted)
		} else {
			b.WriteString(name)
		}
		if hasParams {
			b.WriteByte(';')
			r.pairs(&b, params)
		}
	}
	if hasQuery {
		b.WriteByte('?')
		r.pairs(&b, query)
	}
	return b.String()
}

// pairs writes a '&'/';'-separated list with the sensitive values redacted.
func (r *Redactor) pairs(b *strings.Builder, list string) {
	for list != "" {
		i := strings.IndexAny(list, "&;")
		pair, sep := list, ""
		if i >= 0 {
			pair, sep, list = list[:i], list[i:i+1], list[i+1:]
		} else {
			list = ""
		}
		k, v, hasValue := strings.Cut(pair, "=")
		switch {
		case r.carries(k):
			b.WriteString(Redacted)
		case hasValue && (credentialName(k) || nestedCredential(v) || r.carries(v)):
			b.WriteString(k)
			b.WriteString("=" + Redacted)
		default:
			b.WriteString(pair)
		}
		b.WriteString(sep)
	}
}

// carries reports whether a piece of a URL, decoded, holds a secret.
func (r *Redactor) carries(s string) bool {
	if s == "" || r.set.Len() == 0 {
		return false
	}
	if u, err := url.QueryUnescape(s); err == nil && u != s {
		if r.set.carries(u, uriSeparators) {
			return true
		}
	}
	return r.set.carries(s, uriSeparators)
}

// HeaderValue redacts one value of the request header name for a log: a
// Referer (or Origin) is a URL and is redacted like one; any other value
// that carries a secret becomes REDACTED.
func (r *Redactor) HeaderValue(name, v string) string {
	switch strings.ToLower(name) {
	case "referer", "origin":
		return r.URI(v)
	}
	if r.set.Len() > 0 && r.set.carries(v, headerSeparators) {
		return Redacted
	}
	return v
}
