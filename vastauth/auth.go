package vastauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultSessionTTL is how long a session cookie lasts (the reference's
// Max-Age=604800).
const DefaultSessionTTL = 7 * 24 * time.Hour

// Method is one way of presenting a credential; Methods is a set of them.
type Method uint8

// Methods is a bit set of Method values.
type Methods uint8

const (
	// MethodToken: the `token` query parameter.
	MethodToken Method = iota
	// MethodSession: the cookie holding a signed session value.
	MethodSession
	// MethodCookieSecret: the cookie holding the raw secret, set by hand.
	MethodCookieSecret
	// MethodBearer: Authorization: Bearer <secret>.
	MethodBearer
	// MethodBasic: Authorization: Basic with the username and a secret.
	MethodBasic
)

// Has reports whether m is in the set.
func (s Methods) Has(m Method) bool { return s&(1<<m) != 0 }

func (s *Methods) add(m Method) { *s |= 1 << m }

// String names a method for logs ("token", "session", …).
func (m Method) String() string {
	switch m {
	case MethodToken:
		return "token"
	case MethodSession:
		return "session"
	case MethodCookieSecret:
		return "cookie"
	case MethodBearer:
		return "bearer"
	case MethodBasic:
		return "basic"
	}
	return "method(" + strconv.Itoa(int(m)) + ")"
}

// Credentials are what one request presents, as found by Extract.
type Credentials struct {
	// Token is the `token` query parameter, when HasToken.
	Token    string
	HasToken bool
	// Cookie is the value of the session cookie, when HasCookie.
	Cookie    string
	HasCookie bool
	// Authorization is the raw Authorization header ("" when absent).
	Authorization string
}

// Extract finds the credentials of r. It does not allocate unless the token
// parameter is percent-escaped.
func Extract(r *http.Request, cookieName string) Credentials {
	var c Credentials
	c.Token, c.HasToken = QueryParam(r.URL.RawQuery, "token")
	c.Cookie, c.HasCookie = CookieValue(r.Header["Cookie"], cookieName)
	if a := r.Header["Authorization"]; len(a) > 0 {
		c.Authorization = a[0]
	}
	return c
}

// Verdict is the outcome of checking a request's credentials.
type Verdict uint8

const (
	// NoCredentials: nothing was presented (or only an expired session, which
	// proves the client once knew the secret): ask for a login, count nothing.
	NoCredentials Verdict = iota
	// Rejected: a wrong credential was presented; this is a failure the
	// limiter counts.
	Rejected
	// Accepted: at least one presented credential is valid.
	Accepted
)

// Result is the decision for one request.
type Result struct {
	Verdict Verdict
	// Accepted and Presented are the methods that were valid and that were
	// tried at all.
	Accepted, Presented Methods
	// SessionExpired: the cookie held a genuine but expired session.
	SessionExpired bool
}

// IssueSession reports whether the client proved a secret in a way that
// earns a session cookie (the token parameter or Basic).
func (r Result) IssueSession() bool {
	return r.Accepted.Has(MethodToken) || r.Accepted.Has(MethodBasic)
}

// AuthorizationIsOurs reports whether the Authorization header carried our
// secret, so it must be removed before the app sees the request. A header
// that is not ours (an app's own Bearer or Basic) passes untouched.
func (r Result) AuthorizationIsOurs() bool {
	return r.Accepted.Has(MethodBearer) || r.Accepted.Has(MethodBasic)
}

// Authenticator checks credentials against a fixed set of secrets. It is
// safe for concurrent use and holds the secrets only as SHA-256 digests and
// a derived session key.
type Authenticator struct {
	username [sha256.Size]byte
	secrets  [][sha256.Size]byte
	ttl      time.Duration
	// macs pools signers (an HMAC state keyed with the session key and a
	// scratch buffer), so that verifying a cookie does not allocate.
	macs sync.Pool
}

type signer struct {
	mac hash.Hash
	buf [64]byte // "v1." + a decimal int64 fits
}

// ErrNoSecret is returned by New when no non-empty secret is given.
var ErrNoSecret = errors.New("no secret configured")

// New returns an Authenticator for username and the non-empty secrets
// (empty ones are ignored; at least one must remain). Sessions last ttl
// (DefaultSessionTTL when zero). The session key is derived from every
// secret, so changing any secret revokes every session issued before.
func New(username string, secrets []string, ttl time.Duration) (*Authenticator, error) {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	var kept []string
	for _, s := range secrets {
		if s != "" {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return nil, ErrNoSecret
	}
	a := &Authenticator{username: sha256.Sum256([]byte(username)), ttl: ttl}
	for _, s := range kept {
		a.secrets = append(a.secrets, sha256.Sum256([]byte(s)))
	}
	key := sessionKey(kept)
	a.macs.New = func() any { return &signer{mac: hmac.New(sha256.New, key[:])} }
	return a, nil
}

// sessionKey derives the HMAC key for session values from the secrets:
// SHA-256 over a domain label and each secret, length-prefixed and sorted so
// that the order of configuration does not matter.
func sessionKey(secrets []string) [sha256.Size]byte {
	sorted := append([]string(nil), secrets...)
	sort.Strings(sorted)
	h := sha256.New()
	h.Write([]byte("instance-portal vastauth session key v1\x00"))
	var n [8]byte
	for _, s := range sorted {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// TTL is how long an issued session lasts.
func (a *Authenticator) TTL() time.Duration { return a.ttl }

// MatchSecret reports, in constant time, whether candidate is one of the
// secrets. Fixed-length digests hide the secrets' lengths, and every secret
// is compared so the time does not depend on which one matched.
func (a *Authenticator) MatchSecret(candidate string) bool {
	d := sha256.Sum256([]byte(candidate))
	match := 0
	for i := range a.secrets {
		match |= subtle.ConstantTimeCompare(d[:], a.secrets[i][:])
	}
	return match == 1
}

// matchBasicPayload checks a Basic payload. Payloads of usual size are
// decoded in stack buffers, so the check does not allocate.
func (a *Authenticator) matchBasicPayload(payload string) bool {
	if len(payload) > 256 {
		user, pass, ok := DecodeBasic(payload)
		return ok && a.matchBasic([]byte(user), []byte(pass))
	}
	var src [256]byte
	var dst [192]byte
	n, err := base64.StdEncoding.Decode(dst[:], src[:copy(src[:], payload)])
	if err != nil {
		return false
	}
	user, pass, ok := bytes.Cut(dst[:n], []byte{':'})
	return ok && a.matchBasic(user, pass)
}

// matchBasic checks user and password together in constant time: the
// username compare never short-circuits the secret compare, so timing does
// not reveal whether the username was right.
func (a *Authenticator) matchBasic(user, password []byte) bool {
	u := sha256.Sum256(user)
	userOK := subtle.ConstantTimeCompare(u[:], a.username[:])
	d := sha256.Sum256(password)
	secretOK := 0
	for i := range a.secrets {
		secretOK |= subtle.ConstantTimeCompare(d[:], a.secrets[i][:])
	}
	return userOK&secretOK == 1
}

// Check decides on the credentials c at time now. Every presented credential
// is checked (not just the first valid one) so the caller knows whether the
// Authorization header was ours.
func (a *Authenticator) Check(c Credentials, now time.Time) Result {
	var r Result
	if c.HasToken {
		r.Presented.add(MethodToken)
		if a.MatchSecret(c.Token) {
			r.Accepted.add(MethodToken)
		}
	}
	if c.HasCookie {
		switch a.VerifySession(c.Cookie, now) {
		case SessionValid:
			r.Presented.add(MethodSession)
			r.Accepted.add(MethodSession)
		case SessionExpired:
			r.SessionExpired = true
		default:
			// Not a session we signed: a raw secret set by hand, or wrong.
			r.Presented.add(MethodCookieSecret)
			if a.MatchSecret(c.Cookie) {
				r.Accepted.add(MethodCookieSecret)
			}
		}
	}
	switch scheme, cred := ParseAuthorization(c.Authorization); scheme {
	case SchemeBearer:
		r.Presented.add(MethodBearer)
		if a.MatchSecret(cred) {
			r.Accepted.add(MethodBearer)
		}
	case SchemeBasic:
		r.Presented.add(MethodBasic)
		if a.matchBasicPayload(cred) {
			r.Accepted.add(MethodBasic)
		}
	}
	switch {
	case r.Accepted != 0:
		r.Verdict = Accepted
	case r.Presented != 0:
		r.Verdict = Rejected
	default:
		r.Verdict = NoCredentials
	}
	return r
}

// Session values look like "v1.<unix expiry>.<base64url HMAC-SHA256>": the
// MAC covers "v1.<expiry>" under the key derived from the secrets, so the
// value proves the secret was presented without revealing it.
const sessionPrefix = "v1."

// SessionState is what VerifySession found.
type SessionState uint8

const (
	// SessionInvalid: not a value we signed (malformed or wrong MAC).
	SessionInvalid SessionState = iota
	// SessionExpired: genuine, but past its expiry.
	SessionExpired
	// SessionValid: genuine and current.
	SessionValid
)

// IssueSession returns a session value that expires TTL after now.
func (a *Authenticator) IssueSession(now time.Time) string {
	exp := now.Add(a.ttl).Unix()
	buf := make([]byte, 0, len(sessionPrefix)+20+1+base64.RawURLEncoding.EncodedLen(sha256.Size))
	buf = append(buf, sessionPrefix...)
	buf = strconv.AppendInt(buf, exp, 10)
	var mac [sha256.Size]byte
	a.sign(string(buf), &mac)
	buf = append(buf, '.')
	buf = base64.RawURLEncoding.AppendEncode(buf, mac[:])
	return string(buf)
}

// VerifySession checks a session value at time now. The MAC is checked
// before the expiry is trusted, in constant time.
func (a *Authenticator) VerifySession(v string, now time.Time) SessionState {
	if !strings.HasPrefix(v, sessionPrefix) {
		return SessionInvalid
	}
	signed, macText, ok := cutLast(v, '.')
	if !ok || len(signed) <= len(sessionPrefix) || len(macText) != base64.RawURLEncoding.EncodedLen(sha256.Size) {
		return SessionInvalid
	}
	if len(signed) > len(signer{}.buf) {
		return SessionInvalid
	}
	exp, err := strconv.ParseInt(signed[len(sessionPrefix):], 10, 64)
	if err != nil || exp <= 0 {
		return SessionInvalid
	}
	var got, want [sha256.Size]byte
	var src [44]byte // a stack copy: converting the string would allocate
	if n, err := sessionMAC.Decode(got[:], src[:copy(src[:], macText)]); err != nil || n != sha256.Size {
		return SessionInvalid
	}
	a.sign(signed, &want)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return SessionInvalid
	}
	if now.Unix() >= exp {
		return SessionExpired
	}
	return SessionValid
}

// sign computes the MAC of msg, which is at most 64 bytes ("v1.<expiry>";
// callers check), into out.
func (a *Authenticator) sign(msg string, out *[sha256.Size]byte) {
	s := a.macs.Get().(*signer)
	s.mac.Reset()
	s.mac.Write(s.buf[:copy(s.buf[:], msg)])
	copy(out[:], s.mac.Sum(s.buf[:0]))
	a.macs.Put(s)
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// sessionMAC decodes strictly: the last character of a 32-byte value has two
// unused bits, and a lax decoder would accept four spellings of one MAC.
var sessionMAC = base64.RawURLEncoding.Strict()
