// Package shellwords splits a line into words the way a POSIX shell reads
// them (quotes and backslashes), with no expansion: a manifest's extra
// install arguments become argv without a shell in between, and the image
// tests read the Dockerfile's ENV lines as Docker does.
package shellwords

import "strings"

// Split returns the words of s. Blanks (space, tab, newline) separate
// words; single quotes keep everything literal up to the next one; double
// quotes keep blanks and single quotes; a backslash outside single quotes
// takes the next character as it is (inside double quotes too, which is
// broader than a shell's few escapes there, and enough for arguments). An
// empty pair of quotes is an empty word; an unclosed quote runs to the
// end. Bytes pass as they are, valid UTF-8 or not.
func Split(s string) []string {
	var (
		out   []string
		cur   strings.Builder
		word  bool // cur holds a word, possibly empty ("")
		esc   bool
		quote byte
	)
	for i := 0; i < len(s); i++ {
		// Bytes, not runes: every special character is ASCII, and bytes
		// that are not UTF-8 pass unchanged.
		c := s[i]
		switch {
		case esc:
			cur.WriteByte(c)
			esc, word = false, true
		case c == '\\' && quote != '\'':
			esc = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, word = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if word {
				out = append(out, cur.String())
				cur.Reset()
				word = false
			}
		default:
			cur.WriteByte(c)
			word = true
		}
	}
	if word {
		out = append(out, cur.String())
	}
	return out
}
