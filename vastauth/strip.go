package vastauth

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strings"
)

// maxSecretCandidates bounds the pieces of one text that Carries compares.
// A real Authorization header (Bearer, Basic, Digest with its ten
// parameters) yields far fewer; a text that yields more is treated as
// carrying a secret, since it cannot be checked cheaply.
const maxSecretCandidates = 256

// Separators between the words of a header value, and of a URL part.
const (
	headerSeparators = " \t,;\"'=/\\\x00"
	uriSeparators    = headerSeparators + "#?&+"
)

// Carries reports whether a header value (an Authorization header, say)
// carries one of the secrets in any form a client, or a confused script,
// might use: the whole value or what follows its scheme, quoted or not
// ("Bearer\t<s>", `Bearer "<s>"`, "Token <s>", "<s>" alone); any word of
// it, split at white space, commas, semicolons, quotes and '=', and the
// parts of a word around ':' ("Basic root:<s>", `Digest password="<s>"`);
// any word that decodes as base64 or base64url, with the parts of the
// decoded text around its first ':' ("Basic " + base64("root:<s>")); and
// all of these again after percent-decoding. Each piece is compared with
// Match, so the time spent depends on the shape of the value, not on the
// secrets.
func (s *SecretSet) Carries(v string) bool {
	return s.carries(v, headerSeparators)
}

func (s *SecretSet) carries(v, seps string) bool {
	c := candidateScan{set: s, seps: seps}
	c.scan(v)
	if strings.IndexByte(v, '%') >= 0 {
		if u, err := url.PathUnescape(v); err == nil && u != v {
			c.scan(u)
		}
	}
	return c.found || c.n > maxSecretCandidates
}

type candidateScan struct {
	set   *SecretSet
	seps  string
	n     int
	found bool
}

func (c *candidateScan) try(s string) {
	if s == "" {
		return
	}
	c.n++
	if c.n <= maxSecretCandidates && c.set.Match(s) {
		c.found = true
	}
}

func (c *candidateScan) tryBytes(b []byte) {
	if len(b) == 0 {
		return
	}
	c.n++
	if c.n <= maxSecretCandidates && c.set.matchBytes(b) {
		c.found = true
	}
}

func (c *candidateScan) scan(v string) {
	v = strings.TrimSpace(v)
	c.try(v)
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		rest := strings.TrimSpace(v[i:])
		c.try(rest)
		if unq := strings.Trim(rest, `"'`); unq != rest {
			c.try(unq)
		}
		if _, pass, ok := strings.Cut(rest, ":"); ok {
			c.try(pass) // "Basic user:<secret with spaces>"
		}
	}
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(c.seps, r) }) {
		if c.n > maxSecretCandidates {
			return
		}
		c.try(w)
		if before, after, ok := strings.Cut(w, ":"); ok {
			// Around the first ':' (a secret containing ':' stays whole
			// after "user:"), then at every ':'.
			c.try(before)
			c.try(after)
			if strings.Contains(after, ":") {
				for _, part := range strings.Split(after, ":") {
					c.try(part)
				}
			}
		}
		c.tryDecoded(strings.TrimRight(w, "="))
	}
}

// tryDecoded tries w as unpadded base64 or base64url.
func (c *candidateScan) tryDecoded(w string) {
	if len(w) < 2 || len(w) > 8192 {
		return
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(w, "-_") {
		enc = base64.RawURLEncoding
	}
	d, err := enc.DecodeString(w)
	if err != nil {
		return
	}
	c.tryBytes(d)
	if i := bytes.IndexByte(d, ':'); i >= 0 {
		c.tryBytes(d[:i])
		c.tryBytes(d[i+1:])
		// "u:<s>\x00" and the like: control bytes around the password.
		if t := bytes.TrimFunc(d[i+1:], isControl); len(t) != len(d)-i-1 {
			c.tryBytes(t)
		}
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// StripQuery removes from a raw query string every parameter whose value
// carries one of the secrets (Carries, with URL separators), whatever its
// name: a secret sent as ?Token=, token[]= or ;token= is not ours by name
// but must not reach the app either. Parameters are split at '&' and ';';
// when one is removed, the others are kept as written, joined by '&'.
func (s *SecretSet) StripQuery(raw string) (string, bool) {
	pairs := strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' })
	kept := pairs[:0:0]
	for _, pair := range pairs {
		if _, v, ok := strings.Cut(pair, "="); ok && s.carries(v, uriSeparators) {
			continue
		}
		kept = append(kept, pair)
	}
	if len(kept) == len(pairs) {
		return raw, false
	}
	return strings.Join(kept, "&"), true
}
