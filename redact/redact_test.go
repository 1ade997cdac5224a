package redact

import "testing"

func TestURLs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"fetch https://u:p@h.example/x.sh failed", "fetch https://…@h.example/x.sh failed"},
		{"https://h/x?token=abc", "https://h/x?…"},
		{"no url here", "no url here"},
	} {
		if got := URLs(c.in); got != c.want {
			t.Errorf("URLs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
