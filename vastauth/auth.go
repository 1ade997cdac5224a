package vastauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

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
	// MethodHandoff: the `portal_handoff` query parameter, a signed,
	// single-use token bound to this origin (see IssueHandoff).
	MethodHandoff
)

// Guessable are the methods whose value is a secret a person may have
// chosen, so that trying values is a way to find it. Signed values
// (sessions, handoff tokens) cannot be guessed.
const Guessable = Methods(1<<MethodToken | 1<<MethodCookieSecret | 1<<MethodBearer | 1<<MethodBasic)

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
	case MethodHandoff:
		return "handoff"
	}
	return "method(" + strconv.Itoa(int(m)) + ")"
}

// The query parameters that carry our credentials.
const (
	TokenParam   = "token"
	HandoffParam = "portal_handoff"
)

// Credentials are what one request presents, as found by Extract.
type Credentials struct {
	// Token is the `token` query parameter, when HasToken.
	Token    string
	HasToken bool
	// Handoff is the `portal_handoff` query parameter, when HasHandoff.
	Handoff    string
	HasHandoff bool
	// Origin is the origin the request was sent to (RequestOrigin), which
	// a handoff token must be bound to; set only when HasHandoff.
	Origin string
	// Cookie is the value of the session cookie, when HasCookie.
	Cookie    string
	HasCookie bool
	// Authorization is the first Authorization header ("" when absent).
	Authorization string
}

// Extract finds the credentials of r. It does not allocate unless a
// parameter is percent-escaped or a handoff token is presented.
func Extract(r *http.Request, cookieName string) Credentials {
	var c Credentials
	if r.URL.RawQuery != "" {
		c.Token, c.HasToken = queryParam(r.URL.RawQuery, TokenParam)
		c.Handoff, c.HasHandoff = queryParam(r.URL.RawQuery, HandoffParam)
		if c.HasHandoff {
			c.Origin = RequestOrigin(r)
		}
	}
	c.Cookie, c.HasCookie = CookieValue(r.Header["Cookie"], cookieName)
	if a := r.Header["Authorization"]; len(a) > 0 {
		c.Authorization = a[0]
	}
	return c
}

// Guessable reports whether c presents a credential of a guessable kind
// (see Guessable), right or wrong. A cookie counts only when it is not a
// session we signed.
func (c Credentials) Guessable(a *Authenticator, now time.Time) bool {
	if c.HasToken {
		return true
	}
	if c.HasCookie {
		if st, _, _ := a.verifySession(c.Cookie, now); st == SessionInvalid {
			return true
		}
	}
	s, _ := parseAuthorization(c.Authorization)
	return s == SchemeBearer || s == SchemeBasic
}

// Verdict is the outcome of checking a request's credentials.
type Verdict uint8

const (
	// NoCredentials: nothing was presented (or only an expired or revoked
	// session, which proves the client once knew the secret): ask for a
	// login, count nothing.
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
	// SessionEnded: the cookie held a genuine session that has expired or
	// was revoked.
	SessionEnded bool
	// HandoffErr says why a presented handoff token was refused (nil when
	// accepted or not presented). It never contains the token.
	HandoffErr error
}

// IssueSession reports whether the client proved a secret (or a handoff)
// in a way that earns a session cookie: the token or handoff parameter, or
// Basic.
func (r Result) IssueSession() bool {
	return r.Accepted.Has(MethodToken) || r.Accepted.Has(MethodBasic) || r.Accepted.Has(MethodHandoff)
}

// Authenticator checks credentials against a fixed set of secrets. It is
// safe for concurrent use and holds the secrets only as SHA-256 digests and
// a derived session key.
type Authenticator struct {
	username [sha256.Size]byte
	secrets  *SecretSet
	// strong are the unguessable secrets (Params.Unguessable).
	strong   *SecretSet
	ttl      time.Duration
	key      [sha256.Size]byte
	revoked  *Revocations
	handoffs *HandoffLedger
	// macs pools signers (an HMAC state keyed with the session key and a
	// scratch buffer), so that verifying a cookie does not allocate.
	macs sync.Pool
}

type signer struct {
	mac hash.Hash
	buf [64]byte // "v2." + a decimal int64 + "." + a session id fits
}

// Params configure New.
type Params struct {
	// Username for Basic.
	Username string
	// Secrets accepted; empty ones are ignored, at least one must remain.
	Secrets []string
	// Salt is this instance's random salt for the session key (at least
	// 16 bytes; loadOrCreateSalt keeps one in the state directory).
	Salt []byte
	// SessionTTL is the lifetime of issued sessions; zero means 7 days.
	SessionTTL time.Duration
	// Revocations, when set, lists logged-out sessions.
	Revocations *Revocations
	// Handoffs, when set, enables handoff tokens and makes them single-use.
	Handoffs *HandoffLedger
	// Unguessable are the Secrets no person chose (ResolvedSecrets'
	// Unguessable): a `?token=` is checked against them, and only them,
	// while its client is over the failure limit (CheckSigned).
	Unguessable []string
}

// Errors of New.
var (
	ErrNoSecret  = errors.New("no secret configured")
	ErrShortSalt = errors.New("session salt shorter than 16 bytes")
)

// New returns an Authenticator. The session key is derived from the salt
// and every secret: changing a secret revokes every session issued before,
// and another instance (another salt) does not accept our sessions even
// when it shares the secrets.
func New(p Params) (*Authenticator, error) {
	if p.SessionTTL <= 0 {
		p.SessionTTL = Default().SessionTTL.Std()
	}
	var kept []string
	for _, s := range p.Secrets {
		if s != "" {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return nil, ErrNoSecret
	}
	if len(p.Salt) < 16 {
		return nil, ErrShortSalt
	}
	a := &Authenticator{
		username: sha256.Sum256([]byte(p.Username)),
		ttl:      p.SessionTTL,
		key:      sessionKey(p.Salt, kept),
		revoked:  p.Revocations,
		handoffs: p.Handoffs,
	}
	a.secrets = NewSecretSet(kept)
	var strong []string
	for _, s := range p.Unguessable {
		if s != "" && slices.Contains(kept, s) {
			strong = append(strong, s)
		}
	}
	if len(strong) > 0 {
		a.strong = NewSecretSet(strong)
	}
	key := a.key
	a.macs.New = func() any { return &signer{mac: hmac.New(sha256.New, key[:])} }
	return a, nil
}

// sessionKey derives the HMAC key for session values and handoff tokens:
// HMAC-SHA256 keyed with the instance's salt over a domain label and each
// secret, length-prefixed and sorted so that the order of configuration
// does not matter.
func sessionKey(salt []byte, secrets []string) [sha256.Size]byte {
	sorted := append([]string(nil), secrets...)
	sort.Strings(sorted)
	h := hmac.New(sha256.New, salt)
	h.Write([]byte("instance-portal vastauth session key v2\x00"))
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
// secrets (see SecretSet.Match).
func (a *Authenticator) MatchSecret(candidate string) bool { return a.secrets.Match(candidate) }

// CarriesSecret reports whether an Authorization header value carries one
// of the secrets in any form (see SecretSet.Carries).
func (a *Authenticator) CarriesSecret(v string) bool { return a.secrets.Carries(v) }

// matchBasicPayload checks a Basic payload. Payloads of usual size are
// decoded in stack buffers, so the check does not allocate.
func (a *Authenticator) matchBasicPayload(payload string) bool {
	if len(payload) > 256 {
		user, pass, ok := decodeBasic(payload)
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
	secretOK := 0
	if a.secrets.matchBytes(password) {
		secretOK = 1
	}
	return userOK&secretOK == 1
}

// Check decides on the credentials c at time now. Every presented credential
// is checked (not just the first valid one) so the caller knows which kinds
// were valid. A valid handoff token is spent: presenting it again fails.
func (a *Authenticator) Check(c Credentials, now time.Time) Result {
	return a.check(c, now, true)
}

// CheckSigned is Check for a client over the failure limit: only the
// credentials that cannot be guessed (a signed session, a handoff token, a
// `?token=` compared with the unguessable secrets alone) are looked at;
// guessable ones are neither checked nor reported, so a right guess is
// worth nothing to a client that is being refused.
func (a *Authenticator) CheckSigned(c Credentials, now time.Time) Result {
	return a.check(c, now, false)
}

func (a *Authenticator) check(c Credentials, now time.Time, guessable bool) Result {
	var r Result
	switch {
	case c.HasToken && guessable:
		r.Presented.add(MethodToken)
		if a.MatchSecret(c.Token) {
			r.Accepted.add(MethodToken)
		}
	case c.HasToken && a.strong != nil:
		r.Presented.add(MethodToken)
		if a.strong.Match(c.Token) {
			r.Accepted.add(MethodToken)
		}
	}
	if c.HasHandoff {
		r.Presented.add(MethodHandoff)
		if r.HandoffErr = a.redeemHandoff(c.Handoff, c.Origin, now); r.HandoffErr == nil {
			r.Accepted.add(MethodHandoff)
		}
	}
	if c.HasCookie {
		switch st, _, _ := a.verifySession(c.Cookie, now); st {
		case SessionValid:
			r.Presented.add(MethodSession)
			r.Accepted.add(MethodSession)
		case SessionExpired, SessionRevoked:
			r.SessionEnded = true
		default:
			// Not a session we signed: a raw secret set by hand, or wrong.
			if guessable {
				r.Presented.add(MethodCookieSecret)
				if a.MatchSecret(c.Cookie) {
					r.Accepted.add(MethodCookieSecret)
				}
			}
		}
	}
	if guessable {
		switch scheme, cred := parseAuthorization(c.Authorization); scheme {
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

// Session values look like "v2.<unix expiry>.<session id>.<base64url
// HMAC-SHA256>": the MAC covers "v2.<expiry>.<id>" under the session key,
// so the value proves the secret was presented without revealing it. The
// id (16 random bytes, base64url) names the session for logout.
const (
	sessionPrefix = "v2."
	sessionIDLen  = 22 // base64url of 16 bytes
	macTextLen    = 43 // base64url of 32 bytes
)

// SessionState is what VerifySession found.
type SessionState uint8

const (
	// SessionInvalid: not a value we signed (malformed or wrong MAC).
	SessionInvalid SessionState = iota
	// SessionExpired: genuine, but past its expiry.
	SessionExpired
	// SessionRevoked: genuine, but logged out.
	SessionRevoked
	// SessionValid: genuine and current.
	SessionValid
)

// IssueSession returns a new session value that expires TTL after now.
func (a *Authenticator) IssueSession(now time.Time) string {
	var id [16]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand documents it)
	return a.sessionValue(now.Add(a.ttl).Unix(), base64.RawURLEncoding.EncodeToString(id[:]))
}

// sessionValue is the signed value for an expiry and a session id.
func (a *Authenticator) sessionValue(exp int64, id string) string {
	buf := make([]byte, 0, len(sessionPrefix)+20+1+sessionIDLen+1+macTextLen)
	buf = append(buf, sessionPrefix...)
	buf = strconv.AppendInt(buf, exp, 10)
	buf = append(buf, '.')
	buf = append(buf, id...)
	var mac [sha256.Size]byte
	a.sign(string(buf), &mac)
	buf = append(buf, '.')
	buf = base64.RawURLEncoding.AppendEncode(buf, mac[:])
	return string(buf)
}

// VerifySession checks a session value at time now.
func (a *Authenticator) VerifySession(v string, now time.Time) SessionState {
	st, _, _ := a.verifySession(v, now)
	return st
}

// Session returns the id and expiry of a genuine session value (valid,
// expired or revoked), for logging it out.
func (a *Authenticator) Session(v string, now time.Time) (id string, exp int64, ok bool) {
	st, id, exp := a.verifySession(v, now)
	return id, exp, st != SessionInvalid
}

// verifySession checks the MAC before trusting the expiry or the id, in
// constant time, and without allocating.
func (a *Authenticator) verifySession(v string, now time.Time) (SessionState, string, int64) {
	if !strings.HasPrefix(v, sessionPrefix) {
		return SessionInvalid, "", 0
	}
	signed, macText, ok := cutLast(v, '.')
	if !ok || len(macText) != macTextLen || len(signed) <= len(sessionPrefix) || len(signed) > len(signer{}.buf) {
		return SessionInvalid, "", 0
	}
	expText, id, ok := strings.Cut(signed[len(sessionPrefix):], ".")
	if !ok || len(id) != sessionIDLen {
		return SessionInvalid, "", 0
	}
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil || exp <= 0 || expText[0] == '+' {
		return SessionInvalid, "", 0
	}
	var got, want [sha256.Size]byte
	var src [macTextLen]byte // a stack copy: converting the string would allocate
	if n, err := strictB64.Decode(got[:], src[:copy(src[:], macText)]); err != nil || n != sha256.Size {
		return SessionInvalid, "", 0
	}
	a.sign(signed, &want)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return SessionInvalid, "", 0
	}
	switch {
	case now.Unix() >= exp:
		return SessionExpired, id, exp
	case a.revoked != nil && a.revoked.Revoked(id, exp):
		return SessionRevoked, id, exp
	}
	return SessionValid, id, exp
}

// Revoke logs the session value v out (when it is genuine) until its
// expiry. See Revocations.Revoke for the results.
func (a *Authenticator) Revoke(v string, now time.Time) (revoked, floorRaised bool, err error) {
	id, exp, ok := a.Session(v, now)
	if !ok || a.revoked == nil || exp <= now.Unix() {
		return false, false, nil
	}
	floorRaised, err = a.revoked.Revoke(id, exp, now)
	return true, floorRaised, err
}

// sign computes the MAC of msg, which is at most 64 bytes (callers check),
// into out.
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

// strictB64 decodes MACs and ids strictly: the last character of a 32-byte
// value has two unused bits, and a lax decoder would accept four spellings
// of one MAC.
var strictB64 = base64.RawURLEncoding.Strict()
