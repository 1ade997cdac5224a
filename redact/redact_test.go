package redact

import (
	"strings"
	"testing"
)

func TestURLs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"fetch https://u:p@h.example/x.sh failed", "fetch https://…@h.example/x.sh failed"},
		{"https://h/x?token=abc", "https://h/x?…"},
		{"no url here", "no url here"},
		// Issue 20: the forms /api/boot's masking missed.
		{"curl //u:PASSWORD@h.example/x", "curl //…@h.example/x"},
		{"from user:PASSWORD@h.example/x", "from …@h.example/x"},
		{"https%3A%2F%2Fu%3APASSWORD%40h.example%2Fx", "https%3A%2F%2F…@h.example%2Fx"},
		{"https%3a%2f%2fh.example%2Fx%3Ftoken%3DSECRET", "https%3a%2f%2fh.example%2Fx?…"},
		{"https://h.example/x.sh\u202e(hs.lanigiro)", "https://h.example/x.sh(hs.lanigiro)"},
		{"a\u200bb", "ab"},
		// Kept: an address without a password, a time, a port.
		{"mail git@github.com at 12:30", "mail git@github.com at 12:30"},
		{"listening on localhost:8080", "listening on localhost:8080"},
	} {
		if got := URLs(c.in); got != c.want {
			t.Errorf("URLs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzURLs: whatever the text, a password placed in a URL's user
// information or query does not come out, nor does a bidi control.
func FuzzURLs(f *testing.F) {
	for _, s := range []string{"https://", "//", "x:", "%3A%2F%2F", "?", "%3F", "a@b"} {
		f.Add(s, "x")
	}
	f.Fuzz(func(t *testing.T, prefix, suffix string) {
		const secret = "S3CRETpw"
		for _, in := range []string{
			prefix + "https://user:" + secret + "@host/p " + suffix,
			prefix + " //user:" + secret + "@host " + suffix,
			prefix + " user:" + secret + "@host " + suffix,
			prefix + " https://host/p?token=" + secret + " " + suffix,
			prefix + " https%3A%2F%2Fuser%3A" + secret + "%40host " + suffix,
		} {
			out := URLs(in)
			if strings.Count(out, secret) > strings.Count(prefix+suffix, secret) {
				t.Fatalf("URLs(%q) = %q keeps the secret", in, out)
			}
			if strings.ContainsRune(out, '\u202e') {
				t.Fatalf("URLs(%q) keeps U+202E", in)
			}
		}
	})
}
