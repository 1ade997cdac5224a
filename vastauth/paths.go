package vastauth

import (
	"path"
	"strings"
)

// LogoutPath clears the session cookie. The /.portal/ prefix is reserved:
// no app we proxy uses it.
const LogoutPath = "/.portal/logout"

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

// IsPublicPath reports whether the (decoded) request path passes without
// credentials. Only clean paths qualify: "/.well-known/acme-challenge/../x"
// or one with a backslash or an empty segment is not public, because the app
// behind us might resolve it to a protected resource.
func IsPublicPath(p string) bool {
	if publicPaths[p] {
		return true
	}
	if !strings.HasPrefix(p, acmePrefix) || len(p) == len(acmePrefix) {
		return false
	}
	return path.Clean(p) == p && !strings.ContainsAny(p, "\\\x00")
}
