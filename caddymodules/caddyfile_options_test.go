package caddymodules

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/instanceportal/portal/confdecl"
)

type walkerInner struct {
	Dir string `json:"dir,omitempty"`
}

type walkerSample struct {
	walkerInner
	Count   int               `json:"count,omitempty"`
	Wait    confdecl.Duration `json:"wait,omitempty"`
	On      bool              `json:"on,omitempty"`
	Origins []string          `json:"origins,omitempty"`
	Nested  map[string]string `json:"nested,omitempty"`
}

func TestUnmarshalConfigBlock(t *testing.T) {
	t.Parallel()
	d := caddyfile.NewTestDispenser(`mod {
		dir /var/log
		count 3
		wait 1d2h
		on
		origins a.example b.example
		origins c.example
		pair x y
	}`)
	d.Next()
	var got walkerSample
	var pair []string
	err := unmarshalConfigBlock(d, "mod", &got, map[string]func([]string) error{
		"pair": func(args []string) error { pair = args; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := walkerSample{walkerInner: walkerInner{Dir: "/var/log"}, Count: 3, Wait: confdecl.Duration(26 * time.Hour), On: true,
		Origins: []string{"a.example", "b.example", "c.example"}}
	if !reflect.DeepEqual(got, want) || strings.Join(pair, " ") != "x y" {
		t.Fatalf("got %+v pair %v", got, pair)
	}
}

func TestUnmarshalConfigBlockErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ in, want string }{
		"unknown":        {"mod {\n nope 1\n}", `mod: unrecognized option "nope", at Testfile:2`},
		"duplicate":      {"mod {\n count 1\n count 2\n}", `mod: duplicate option "count", at Testfile:3`},
		"negative count": {"mod {\n count -1\n}", `mod: count "-1": want an integer of at least 0`},
		"bad duration":   {"mod {\n wait soon\n}", `mod: wait "soon": want a duration such as 500ms, 2s or 7d`},
		"neg duration":   {"mod {\n wait -1s\n}", `mod: wait "-1s": want a duration`},
		"two args":       {"mod {\n dir a b\n}", "wrong argument count"},
		"bad bool":       {"mod {\n on maybe\n}", "mod: on: want no argument, true or false"},
		"empty list":     {"mod {\n origins\n}", "wrong argument count"},
		"map field":      {"mod {\n nested x\n}", `mod: option "nested" cannot be set in a Caddyfile; use JSON`},
		"nested block":   {"mod {\n dir x {\n }\n}", `mod: option "dir" takes no block`},
	} {
		d := caddyfile.NewTestDispenser(tc.in)
		d.Next()
		err := unmarshalConfigBlock(d, "mod", new(walkerSample), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, tc.want)
		}
	}
}
