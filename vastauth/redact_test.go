package vastauth

import (
	"net/url"
	"strings"
	"testing"
)

// Issue 14 item 10: the access log redacted only a parameter named exactly
// "token"; ?Token=, ?token[]=, ;token= and %23token= were logged in clear.
// Redaction is now by name however spelled, and by value whatever the name.
func TestRedactURI(t *testing.T) {
	const pw = "Pa55-word!"
	r := NewRedactor([]string{pw, testToken, ""})
	for _, tt := range []struct{ in, want string }{
		{"/lab/tree?token=abc&x=1", "/lab/tree?token=REDACTED&x=1"},
		{"/?Token=abc", "/?Token=REDACTED"},
		{"/?TOKEN=abc&token=def", "/?TOKEN=REDACTED&token=REDACTED"},
		{"/?token[]=abc", "/?token[]=REDACTED"},
		{"/?token%5B%5D=abc", "/?token%5B%5D=REDACTED"},
		{"/?token[0]=abc", "/?token[0]=REDACTED"},
		{"/?a=1;token=abc", "/?a=1;token=REDACTED"},
		{"/?%23token=abc", "/?%23token=REDACTED"},
		{"/?%2523token=abc", "/?%2523token=REDACTED"},
		{"/?x=1%23token=abc", "/?x=REDACTED"},
		{"/?x=1%26token%3Dabc", "/?x=REDACTED"},
		{"/?tok%65n=abc", "/?tok%65n=REDACTED"},
		{"/?portal_handoff=h1.abc", "/?portal_handoff=REDACTED"},
		{"/lab;token=abc/x", "/lab;token=REDACTED/x"},
		{"/lab;jsessionid=1;token=abc?x=1", "/lab;jsessionid=1;token=REDACTED?x=1"},
		// By value, whatever the parameter is called.
		{"/?password=" + url.QueryEscape(pw), "/?password=REDACTED"},
		{"/?x=" + testToken + "&y=2", "/?x=REDACTED&y=2"},
		{"/?auth=Bearer%20" + testToken, "/?auth=REDACTED"},
		{"/files/" + testToken + "/x", "/files/REDACTED/x"},
		{"/files/" + url.PathEscape(pw) + "?a=b", "/files/REDACTED?a=b"},
		{"/?" + testToken, "/?REDACTED"},
		{"/?" + testToken + "=1", "/?REDACTED"},
		// Untouched.
		{"/lab/tree?tokens=abc&mytoken=def&x=1", "/lab/tree?tokens=abc&mytoken=def&x=1"},
		{"/a%20b/c?q=%2F&r", "/a%20b/c?q=%2F&r"},
		{"/", "/"},
		{"", ""},
		{"/?", "/?"},
		// Whole URLs (a Referer).
		{"https://x.example/lab?token=abc#f", "https://x.example/lab?token=REDACTED"},
		{"https://u:" + pw + "@x.example/", "https://REDACTED@x.example/"},
		{"http://x.example", "http://x.example"},
	} {
		if got := r.URI(tt.in); got != tt.want {
			t.Errorf("URI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := r.HeaderValue("X-Api-Key", testToken); got != Redacted {
		t.Errorf("header carrying the token: %q", got)
	}
	if got := r.HeaderValue("User-Agent", "curl/8"); got != "curl/8" {
		t.Errorf("plain header: %q", got)
	}
	if got := r.HeaderValue("Referer", "http://x/?token=abc"); got != "http://x/?token=REDACTED" {
		t.Errorf("referer: %q", got)
	}
	// With no secret known, names still count.
	if got := NewRedactor(nil).URI("/?Token=abc&x=y"); got != "/?Token=REDACTED&x=y" {
		t.Errorf("no secrets: %q", got)
	}
}

func FuzzRedactURI(f *testing.F) {
	const secret = "s3cret-Value"
	r := NewRedactor([]string{secret})
	f.Add("/x?a=", "&b=1")
	f.Add("/x;token=", "")
	f.Add("/", "/y")
	f.Add("/?q=", "")
	f.Fuzz(func(t *testing.T, prefix, suffix string) {
		// A secret standing as a word of a URI (set off by separators or
		// the ends) never survives, and every parameter named token keeps
		// no value.
		cut := func(b byte) bool { return strings.IndexByte(uriSeparators+"=:;", b) >= 0 }
		if (prefix != "" && !cut(prefix[len(prefix)-1])) || (suffix != "" && !cut(suffix[0])) || strings.Contains(prefix+suffix, "%") {
			return
		}
		u := prefix + secret + suffix
		if out := r.URI(u); strings.Contains(out, secret) {
			t.Fatalf("URI(%q) = %q keeps the secret", u, out)
		}
		for _, tail := range []string{"?token=", "?a=1&Token=", ";token[]="} {
			u := prefix + tail + "abc" + suffix
			if strings.ContainsAny(suffix, "&;#?/") || strings.Contains(prefix, "?") {
				continue
			}
			if out := r.URI(u); strings.Contains(out, "=abc") {
				t.Fatalf("URI(%q) = %q keeps a token's value", u, out)
			}
		}
	})
}
