package vastauth

import (
	"reflect"
	"testing"
)

func TestCookieValue(t *testing.T) {
	const name = "C.123_auth_token"
	tests := []struct {
		headers []string
		value   string
		found   bool
	}{
		{nil, "", false},
		{[]string{"C.123_auth_token=abc"}, "abc", true},
		{[]string{"a=1; C.123_auth_token=abc; b=2"}, "abc", true},
		{[]string{"a=1;C.123_auth_token=abc"}, "abc", true},
		{[]string{"a=1", "C.123_auth_token=abc"}, "abc", true},
		{[]string{`C.123_auth_token="abc"`}, "abc", true},
		{[]string{"C.123_auth_token="}, "", true},
		{[]string{"C.123_auth_token=a=b"}, "a=b", true},
		{[]string{"C.123_auth_token=first; C.123_auth_token=second"}, "first", true},
		// Merely containing the text is not the cookie.
		{[]string{"xC.123_auth_token=abc"}, "", false},
		{[]string{"C.123_auth_tokens=abc"}, "", false},
		{[]string{"other=C.123_auth_token=abc"}, "", false},
		{[]string{"other=abc"}, "", false},
		{[]string{"C.123_auth_token"}, "", false},
	}
	for _, tt := range tests {
		v, ok := CookieValue(tt.headers, name)
		if v != tt.value || ok != tt.found {
			t.Errorf("CookieValue(%q) = %q, %v; want %q, %v", tt.headers, v, ok, tt.value, tt.found)
		}
	}
}

func TestStripCookie(t *testing.T) {
	const name = "tok"
	tests := []struct {
		in, want []string
		changed  bool
	}{
		{nil, nil, false},
		{[]string{"a=1;b=2"}, []string{"a=1;b=2"}, false},
		{[]string{"tok=x"}, nil, true},
		{[]string{"a=1; tok=x; b=2"}, []string{"a=1; b=2"}, true},
		{[]string{"a=1", "tok=x; tok=y", "b=2"}, []string{"a=1", "b=2"}, true},
		{[]string{"a=1;tok=x"}, []string{"a=1"}, true},
		{[]string{"tokx=1; tok=2"}, []string{"tokx=1"}, true},
	}
	for _, tt := range tests {
		got, changed := StripCookie(tt.in, name)
		if !reflect.DeepEqual(got, tt.want) || changed != tt.changed {
			t.Errorf("StripCookie(%q) = %q, %v; want %q, %v", tt.in, got, changed, tt.want, tt.changed)
		}
	}
}

func TestQueryParam(t *testing.T) {
	tests := []struct {
		raw, value string
		found      bool
		stripped   string
	}{
		{"", "", false, ""},
		{"token=abc", "abc", true, ""},
		{"a=1&token=abc&b=2", "abc", true, "a=1&b=2"},
		{"token=abc&a=%20x", "abc", true, "a=%20x"},
		{"a=1&token=a%2Bb", "a+b", true, "a=1"},
		{"tok%65n=x", "x", true, ""},
		{"token", "", true, ""},
		{"token=%zz", "%zz", true, ""},
		{"token=1&token=2", "1", true, ""},
		{"tokens=1&xtoken=2", "", false, "tokens=1&xtoken=2"},
		{"a=token", "", false, "a=token"},
		{"a=1&&b=2", "", false, "a=1&&b=2"},
	}
	for _, tt := range tests {
		v, ok := queryParam(tt.raw, "token")
		if v != tt.value || ok != tt.found {
			t.Errorf("queryParam(%q) = %q, %v; want %q, %v", tt.raw, v, ok, tt.value, tt.found)
		}
		s, changed := StripQueryParam(tt.raw, "token")
		if s != tt.stripped || changed != tt.found {
			t.Errorf("StripQueryParam(%q) = %q, %v; want %q, %v", tt.raw, s, changed, tt.stripped, tt.found)
		}
	}
}

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		h      string
		scheme Scheme
		cred   string
	}{
		{"", SchemeNone, ""},
		{"   ", SchemeNone, ""},
		{"Bearer abc", SchemeBearer, "abc"},
		{"BEARER   abc  ", SchemeBearer, "abc"},
		{"Bearer", SchemeBearer, ""},
		{"Basic dmFzdGFpOng=", SchemeBasic, "dmFzdGFpOng="},
		{"basic dmFzdGFpOng=", SchemeBasic, "dmFzdGFpOng="},
		{"token abc", SchemeOther, "abc"},
		{"Bearerabc", SchemeOther, ""},
	}
	for _, tt := range tests {
		s, c := parseAuthorization(tt.h)
		if s != tt.scheme || c != tt.cred {
			t.Errorf("parseAuthorization(%q) = %d, %q; want %d, %q", tt.h, s, c, tt.scheme, tt.cred)
		}
	}
}

func TestDecodeBasic(t *testing.T) {
	tests := []struct {
		payload, user, pass string
		ok                  bool
	}{
		{"dmFzdGFpOnNlY3JldA==", "vastai", "secret", true},
		{"dmFzdGFpOmE6Yg==", "vastai", "a:b", true}, // vastai:a:b
		{"dmFzdGFp", "", "", false},                 // no colon
		{"!!", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		u, p, ok := decodeBasic(tt.payload)
		if u != tt.user || p != tt.pass || ok != tt.ok {
			t.Errorf("decodeBasic(%q) = %q, %q, %v; want %q, %q, %v", tt.payload, u, p, ok, tt.user, tt.pass, tt.ok)
		}
	}
}
