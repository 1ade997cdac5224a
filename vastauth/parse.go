package vastauth

import (
	"encoding/base64"
	"net/url"
	"strings"
)

// CookieValue returns the value of the first cookie named name in the given
// Cookie header lines (RFC 6265 §4.2: "a=1; b=2"). The header is parsed as
// cookies: the name must match a whole cookie name exactly, so a header that
// merely contains the text, or carries the value under another name, does
// not match. Surrounding double quotes are removed, as net/http does. It
// does not allocate.
func CookieValue(headers []string, name string) (string, bool) {
	if name == "" {
		return "", false
	}
	for _, line := range headers {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(part, "=")
			if !ok || trimSpace(k) != name {
				continue
			}
			v = trimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// StripCookie removes every cookie named name from the Cookie header lines
// and reports whether any was removed. Lines without that cookie are
// returned unchanged; a line left empty is dropped, and the result is nil
// when nothing remains. Other cookies keep their order and text, so an app's
// own cookies reach it untouched.
func StripCookie(headers []string, name string) ([]string, bool) {
	if _, found := CookieValue(headers, name); !found {
		return headers, false
	}
	var out []string
	for _, line := range headers {
		if _, found := CookieValue([]string{line}, name); !found {
			out = append(out, line)
			continue
		}
		var kept []string
		rest := line
		for rest != "" {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			k, _, _ := strings.Cut(part, "=")
			if trimSpace(k) == name {
				continue
			}
			if p := trimSpace(part); p != "" {
				kept = append(kept, p)
			}
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	return out, true
}

// queryParam returns the first value of key in a raw (still escaped) query
// string, splitting on '&' only, as url.ParseQuery does. Keys and values are
// unescaped; a value whose escaping is broken is returned as it stands, so a
// caller still sees that the parameter was presented. It allocates only when
// the parameter is escaped.
func queryParam(rawQuery, key string) (string, bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(pair, "=")
		if !queryKeyIs(k, key) {
			continue
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		return v, true
	}
	return "", false
}

// StripQueryParam removes every key=value pair whose key is key from a raw
// query string and reports whether it removed any. The other pairs keep
// their order and exact escaping.
func StripQueryParam(rawQuery, key string) (string, bool) {
	if _, found := queryParam(rawQuery, key); !found {
		return rawQuery, false
	}
	var b strings.Builder
	b.Grow(len(rawQuery))
	first := true
	for rest := rawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		k, _, _ := strings.Cut(pair, "=")
		if queryKeyIs(k, key) {
			continue
		}
		if !first {
			b.WriteByte('&')
		}
		first = false
		b.WriteString(pair)
	}
	return b.String(), true
}

// queryKeyIs reports whether the escaped query key k unescapes to key.
func queryKeyIs(k, key string) bool {
	if k == key {
		return true
	}
	if !strings.ContainsAny(k, "%+") {
		return false
	}
	uk, err := url.QueryUnescape(k)
	return err == nil && uk == key
}

// Scheme is the kind of an Authorization header.
type Scheme uint8

const (
	// SchemeNone: no Authorization header.
	SchemeNone Scheme = iota
	// SchemeBearer: "Bearer <token>".
	SchemeBearer
	// SchemeBasic: "Basic <base64(user:password)>".
	SchemeBasic
	// SchemeOther: any other scheme (an app's own, e.g. Jupyter's "token");
	// it is not ours and passes to the app untouched.
	SchemeOther
)

// parseAuthorization splits an Authorization header into its scheme and its
// credentials (the bearer token, or the still-encoded Basic payload). The
// scheme is case-insensitive (RFC 9110 §11.1); spaces around the credentials
// are ignored. It does not allocate.
func parseAuthorization(h string) (Scheme, string) {
	h = trimSpace(h)
	if h == "" {
		return SchemeNone, ""
	}
	scheme, rest, _ := strings.Cut(h, " ")
	rest = trimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return SchemeBearer, rest
	case strings.EqualFold(scheme, "Basic"):
		return SchemeBasic, rest
	}
	return SchemeOther, rest
}

// maxBasicPayload bounds the Basic payload we decode: a username and a
// secret of a few hundred bytes fit; anything longer cannot be ours.
const maxBasicPayload = 4096

// decodeBasic decodes a Basic payload (base64 of "user:password", RFC 7617)
// into its user and password. The password may contain ':'; the user may not.
func decodeBasic(payload string) (user, password string, ok bool) {
	if len(payload) > maxBasicPayload {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	return user, password, true
}

// trimSpace trims the optional whitespace (SP, HTAB) HTTP allows around
// header elements; unlike strings.TrimSpace it leaves other bytes alone.
func trimSpace(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
