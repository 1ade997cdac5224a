// Package portallinks builds the cards of the dashboard's Tools & Help page:
// the built-in help cards (how to log in, the SSH forward, API use, the
// Prometheus scrape, the docs), a template's own links from
// /etc/portal-links.yaml, and PORTAL_LINKS. Bad input never fails the page:
// a malformed file or entry is skipped with a warning that names it. It
// never imports Caddy.
package portallinks

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/instanceportal/portal/confdecl"
)

// Config says where the links come from and what the built-in cards say.
type Config struct {
	// File is the YAML list of link cards a template ships.
	// Default: /etc/portal-links.yaml
	File string `json:"file,omitempty"`
	// Inline holds more links as "Label|URL|Description,…" (the
	// PORTAL_LINKS variable), shown after every other card. Default: none
	Inline string `json:"inline,omitempty"`
	// Username is the login user name the login card shows. Default: vastai
	Username string `json:"username,omitempty"`
	// SSHHost is the instance's public address, for the SSH recipe; when
	// it is unknown the recipe says <instance-ip>. Default: none
	SSHHost string `json:"ssh_host,omitempty"`
	// SSHPort is the public port that reaches the instance's SSH server;
	// when it is unknown the recipe says <ssh-port>. Default: none
	SSHPort int `json:"ssh_port,omitempty"`
	// PortalPort is the portal's internal port, which the SSH recipe
	// forwards. Default: 11111
	PortalPort int `json:"portal_port,omitempty"`
	// DocsURL is where the documentation card leads: this project's docs
	// (the card describes them), not the host's generic site.
	// Default: https://github.com/instanceportal/portal/tree/main/docs
	DocsURL string `json:"docs_url,omitempty"`
}

// ProjectDocsURL: this project's documentation (docs/ of its repository,
// the module path's home).
const ProjectDocsURL = "https://github.com/instanceportal/portal/tree/main/docs"

// DefaultFile is where a template puts its links.
const DefaultFile = "/etc/portal-links.yaml"

// Default is the configuration used for every zero field.
func Default() Config {
	return Config{
		File:       DefaultFile,
		Username:   "vastai",
		PortalPort: 11111,
		DocsURL:    ProjectDocsURL,
	}
}

// Check checks the configuration; each message names the JSON field.
// The inline links are not checked here: a bad one is a warning on the
// page, like a bad entry of the file.
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var check confdecl.Check
	if c.File != "" && !filepath.IsAbs(c.File) {
		check.Failf("file", "%q: want an absolute path", c.File)
	}
	if c.SSHPort < 0 || c.SSHPort > 65535 {
		check.Failf("ssh_port", "%d: want 1-65535", c.SSHPort)
	}
	if c.PortalPort < 0 || c.PortalPort > 65535 {
		check.Failf("portal_port", "%d: want 1-65535", c.PortalPort)
	}
	if c.DocsURL != "" {
		if err := checkURL(c.DocsURL); err != nil {
			check.Failf("docs_url", "%v", err)
		}
	}
	if strings.ContainsFunc(c.Username, unicode.IsControl) {
		check.Failf("username", "contains control characters")
	}
	if strings.ContainsFunc(c.SSHHost, unicode.IsControl) {
		check.Failf("ssh_host", "contains control characters")
	}
	return check.Err()
}

// Icons is the fixed set of icon names a card may use.
var Icons = []string{
	"link", "book", "code", "terminal", "cube", "globe", "tool", "tag",
	"grid", "gpu", "rocket", "image", "download", "star", "zap", "database",
}

// Card sources.
const (
	SourceBuiltin = "builtin"
	SourceFile    = "file"
	SourceEnv     = "env"
)

// Link is a secondary link of a card.
type Link struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// Card is one card of the Tools & Help page (see docs/processes.md).
type Card struct {
	Source      string `json:"source"`
	ID          string `json:"id,omitempty"`
	Label       string `json:"label"`
	URL         string `json:"url,omitempty"`
	Description string `json:"description,omitempty"`
	Icon        string `json:"icon"`
	ButtonText  string `json:"button_text,omitempty"`
	Links       []Link `json:"links,omitempty"`
	Snippet     string `json:"snippet,omitempty"`
	// Position is "before" or "after" the built-in cards (file entries).
	Position string `json:"-"`
}

// Limits on a card's text: enough for any honest card, small enough that a
// broken file cannot flood the page.
const (
	maxLabel       = 80
	maxButtonText  = 40
	maxDescription = 1000
	maxURL         = 2048
	maxLinks       = 20
	maxCards       = 100
)

// checkURL accepts an absolute http or https URL with a host.
func checkURL(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	if len(s) > maxURL {
		return fmt.Errorf("longer than %d bytes", maxURL)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("%q: contains spaces or control characters", clip(s))
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: not a URL", clip(s))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q: want an http or https URL", clip(s))
	}
	return nil
}

// checkText checks one line of text (a label, a button's text): trimmed,
// no control characters, at most max runes. required refuses "".
func checkText(s string, max int, required bool) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" && required:
		return "", errors.New("missing")
	case !utf8.ValidString(s):
		return "", errors.New("not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		return "", fmt.Errorf("%q: contains control characters", clip(s))
	case utf8.RuneCountInString(s) > max:
		return "", fmt.Errorf("longer than %d characters", max)
	}
	return s, nil
}

// checkDescription allows line breaks (and tabs), nothing else invisible.
func checkDescription(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case !utf8.ValidString(s):
		return "", errors.New("not valid UTF-8")
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }):
		return "", errors.New("contains control characters")
	case utf8.RuneCountInString(s) > maxDescription:
		return "", fmt.Errorf("longer than %d characters", maxDescription)
	}
	return s, nil
}

func validIcon(s string) bool { return slices.Contains(Icons, s) }

// clip shortens quoted input in a warning.
func clip(s string) string {
	const n = 60
	if utf8.RuneCountInString(s) > n {
		r := []rune(s)
		return string(r[:n]) + "…"
	}
	return s
}
