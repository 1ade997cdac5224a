package vastauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Handoff tokens carry a login from one origin to another (a tunnel, the
// direct IP link) without the secret: "h1.<unix expiry>.<nonce>.<MAC>".
// The MAC (HMAC-SHA256 under the session key) covers the prefix, expiry
// and nonce, the ledger's per-process epoch and the target origin, so a
// token works only on the origin it was issued for, only in this process,
// and (through the ledger) only once.
const handoffPrefix = "h1."

// noSession stands for the session id in a token issued to a request
// that did not log in with a session cookie.
const noSession = "-"

// MaxOriginLen bounds the origin a handoff token can be issued for.
const MaxOriginLen = 512

// Reasons a handoff token is refused. None contains the token.
var (
	ErrHandoffDisabled  = errors.New("handoff tokens are not enabled")
	ErrHandoffMalformed = errors.New("handoff token malformed or not signed by this instance")
	ErrHandoffExpired   = errors.New("handoff token expired")
	ErrHandoffReplayed  = errors.New("handoff token already used")
	ErrHandoffRevoked   = errors.New("handoff token of a session that was logged out or has expired")
)

// IssueHandoff returns a token for origin (normalised with normalizeOrigin)
// valid for HandoffTTL after now. session is the session cookie of the
// request that asks (empty when it logged in otherwise): the token names
// that session, and logging it out revokes the token too (issue 20).
func (a *Authenticator) IssueHandoff(origin, session string, now time.Time) (string, error) {
	if a.handoffs == nil {
		return "", ErrHandoffDisabled
	}
	o, err := normalizeOrigin(origin)
	if err != nil {
		return "", err
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand documents it)
	sid, sexp := noSession, int64(0)
	if id, exp, ok := a.Session(session, now); ok && session != "" {
		sid, sexp = id, exp
	}
	signed := handoffPrefix + strconv.FormatInt(now.Add(HandoffTTL).Unix(), 10) + "." +
		base64.RawURLEncoding.EncodeToString(nonce[:]) + "." + sid + "." + strconv.FormatInt(sexp, 10)
	mac := a.handoffMAC(signed, o)
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac[:]), nil
}

func (a *Authenticator) handoffMAC(signed, origin string) [sha256.Size]byte {
	h := hmac.New(sha256.New, a.key[:])
	h.Write([]byte(signed))
	h.Write([]byte{0})
	h.Write(a.handoffs.epoch[:])
	h.Write([]byte{0})
	h.Write([]byte(origin))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// redeemHandoff checks tok for the request origin at now and spends it.
func (a *Authenticator) redeemHandoff(tok, requestOrigin string, now time.Time) error {
	if a.handoffs == nil {
		return ErrHandoffDisabled
	}
	if !strings.HasPrefix(tok, handoffPrefix) || len(tok) > 128 {
		return ErrHandoffMalformed
	}
	signed, macText, _ := cutLast(tok, '.')
	fields := strings.Split(strings.TrimPrefix(signed, handoffPrefix), ".")
	if len(fields) != 4 {
		return ErrHandoffMalformed
	}
	expText, nonce, sid, sexpText := fields[0], fields[1], fields[2], fields[3]
	exp, err := strconv.ParseInt(expText, 10, 64)
	sexp, serr := strconv.ParseInt(sexpText, 10, 64)
	if err != nil || exp <= 0 || expText[0] == '+' || len(nonce) != sessionIDLen || len(macText) != macTextLen ||
		serr != nil || (sid != noSession && len(sid) != sessionIDLen) {
		return ErrHandoffMalformed
	}
	var got [sha256.Size]byte
	if n, err := strictB64.Decode(got[:], []byte(macText)); err != nil || n != sha256.Size {
		return ErrHandoffMalformed
	}
	// The origin is compared through the MAC, so a token for another
	// origin looks exactly like a forged one.
	o, err := normalizeOrigin(requestOrigin)
	if err != nil {
		return ErrHandoffMalformed
	}
	want := a.handoffMAC(signed, o)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return ErrHandoffMalformed
	}
	if now.Unix() >= exp || exp > now.Add(HandoffTTL).Unix()+1 {
		return ErrHandoffExpired
	}
	if sid != noSession && (now.Unix() >= sexp || (a.revoked != nil && a.revoked.Revoked(sid, sexp))) {
		return ErrHandoffRevoked
	}
	fresh, err := a.handoffs.use(nonce, exp, now)
	if err != nil {
		return err
	}
	if !fresh {
		return ErrHandoffReplayed
	}
	return nil
}

// normalizeOrigin checks that o is an origin as browsers serialise it
// (scheme "://" host [":" port], scheme http or https, nothing else) and
// returns it lower-cased, without a default port (80 for http, 443 for
// https), so that two spellings of one origin compare equal.
func normalizeOrigin(o string) (string, error) {
	if o == "" {
		return "", errors.New("origin: empty")
	}
	if len(o) > MaxOriginLen {
		return "", fmt.Errorf("origin: longer than %d bytes", MaxOriginLen)
	}
	u, err := url.Parse(o)
	if err != nil {
		return "", fmt.Errorf("origin: %v", err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", errors.New("origin: scheme must be http or https")
	case u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(o, "#"):
		return "", errors.New("origin: want scheme://host[:port] only, without a path, query, fragment or user")
	case u.Host == "":
		return "", errors.New("origin: no host")
	}
	host := strings.ToLower(u.Host)
	if h, port, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", errors.New("origin: bad port")
		}
		if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
	}
	if strings.ContainsAny(host, " \t\r\n/\\@?#%") {
		return "", errors.New("origin: bad host")
	}
	return scheme + "://" + host, nil
}

// ErrHandoffForeign: a handoff token was asked for an origin that is not
// the instance's own.
var ErrHandoffForeign = errors.New("origin: not one of this instance's addresses (the host of this request, PUBLIC_IPADDR or a running tunnel)")

// CheckHandoffOrigin allows a handoff token only for the instance's own
// origins (issue 20: a token could be issued for any origin, and redeemed
// from anywhere sending that Host): the host the request came to (any of
// its ports: they are this instance's), or one of own (the public
// address, the running tunnels' host names). Host names compare without
// case and port.
func CheckHandoffOrigin(origin, requestHost string, own []string) error {
	o, err := normalizeOrigin(origin)
	if err != nil {
		return err
	}
	u, err := url.Parse(o)
	if err != nil {
		return err
	}
	host := strings.ToLower(u.Hostname())
	allowed := append([]string{requestHost}, own...)
	for _, a := range allowed {
		if a == "" {
			continue
		}
		h := a
		if hp, _, err := net.SplitHostPort(a); err == nil {
			h = hp
		}
		if strings.EqualFold(strings.Trim(h, "[]"), host) {
			return nil
		}
	}
	return ErrHandoffForeign
}
