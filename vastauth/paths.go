package vastauth

import (
	"path"
	"strings"
)

// Paths vastauth answers itself on the ports it guards. The /.portal/
// prefix is reserved: no app we proxy uses it. /api/handoff is the one
// place a guarded port answers for the portal rather than for its app: the
// key that signs handoff tokens exists only here.
const (
	LogoutPath  = "/.portal/logout"
	HandoffPath = "/api/handoff"
)

// publicPaths pass without credentials: things a browser or a certificate
// authority fetches before any login (manifests, security.txt, ACME
// challenges), and the portal resolver that maps a public URL to an app.
var publicPaths = map[string]bool{
	"/.well-known/change-password": true,
	"/manifest.json":               true,
	"/manifest.webmanifest":        true,
	"/site.webmanifest":            true,
	"/.well-known/security.txt":    true,
	"/security.txt":                true,
	"/portal-resolver":             true,
}

const acmePrefix = "/.well-known/acme-challenge/"

// IsPublicPath reports whether a request path passes without credentials.
// decoded is the path as the server decoded it (URL.Path), escaped as it
// was sent (URL.EscapedPath()). The app behind us decodes and resolves the
// path again, maybe differently (a Java server reads "..;" as "..", a
// double-encoded "%252e%252e" becomes ".." after its own decoding), so only
// the plainest spelling of a public path qualifies:
//   - nothing percent-encoded (escaped equals decoded), so no encoded dots,
//     slashes or percent signs;
//   - already clean (path.Clean leaves it alone: no "..", ".", "//"), and
//     without ';' or '\';
//   - one of the fixed paths exactly, or an ACME challenge whose token is
//     one segment of base64url characters (RFC 8555 §8.3).
func IsPublicPath(decoded, escaped string) bool {
	if decoded != escaped || path.Clean(decoded) != decoded || strings.ContainsAny(decoded, ";\\") {
		return false
	}
	if publicPaths[decoded] {
		return true
	}
	tok, ok := strings.CutPrefix(decoded, acmePrefix)
	if !ok || tok == "" || len(tok) > 256 {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
