package shellwords

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" \t\n ", nil},
		{"--torch-backend auto", []string{"--torch-backend", "auto"}},
		{"  a   b\tc\nd ", []string{"a", "b", "c", "d"}},
		{`'--index-url' http://x/simple`, []string{"--index-url", "http://x/simple"}},
		{`K="v w" L=x\ y`, []string{"K=v w", "L=x y"}},
		{`'a "b" c'`, []string{`a "b" c`}},
		{`"it's"`, []string{"it's"}},
		{`'a\b'`, []string{`a\b`}},
		{`"a\"b"`, []string{`a"b`}},
		{`"" ''`, []string{"", ""}},
		{`a""b`, []string{"ab"}},
		{`"unclosed rest`, []string{"unclosed rest"}},
		{`trailing\`, []string{"trailing"}},
		{"é ü", []string{"é", "ü"}},
	} {
		if got := Split(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Split(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzSplit: any input splits without panicking, and an input without
// quotes or backslashes splits exactly at its blanks, every other byte
// kept (a stored case holds a byte that is not UTF-8).
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"a b", `'x y' "z"`, `\ `, `"a\"`, "é\tü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words := Split(s)
		if strings.ContainsAny(s, "'\"\\") {
			return
		}
		want := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
		if !reflect.DeepEqual(words, want) && len(want)+len(words) > 0 {
			t.Fatalf("Split(%q) = %q, want %q", s, words, want)
		}
	})
}
