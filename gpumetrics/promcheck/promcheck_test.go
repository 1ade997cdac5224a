package promcheck

import (
	"reflect"
	"strings"
	"testing"
)

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want []Selector
		err  string
	}{
		{q: `DCGM_FI_DEV_GPU_TEMP{instance=~"$instance", gpu=~"$gpu"}`, want: []Selector{{Metric: "DCGM_FI_DEV_GPU_TEMP", Matchers: []Matcher{{"instance", "=~", "$instance", true}, {"gpu", "=~", "$gpu", true}}}}},
		{q: `avg(DCGM_FI_DEV_GPU_TEMP{gpu="0"}) * 1000000`, want: []Selector{{Metric: "DCGM_FI_DEV_GPU_TEMP", Matchers: []Matcher{{"gpu", "=", "0", false}}}}},
		{q: `sum by (instance) (rate(portal_app_requests_total[$__rate_interval])) / on(instance) group_left portal_x`, want: []Selector{{Metric: "portal_app_requests_total"}, {Metric: "portal_x"}}},
		{q: `label_values(DCGM_FI_DEV_GPU_TEMP, instance)`, want: []Selector{{Metric: "DCGM_FI_DEV_GPU_TEMP", Need: []string{"instance"}}}},
		{q: `label_values(instance)`},
		{q: `{__name__="up", job=~"a|b"} offset 5m`, want: []Selector{{Metric: "up", Matchers: []Matcher{{"job", "=~", "a|b", false}}}}},
		{q: `max_over_time(x[5m:1m]) > bool 3`, want: []Selector{{Metric: "x"}}},
		{q: `a{b="c}`, err: "unclosed string"},
		{q: `a{b}`, err: "operator expected"},
		{q: `a{b=c}`, err: "quoted value"},
		{q: `label_values(a, b`, err: "closing parenthesis"},
	} {
		got, err := Selectors(tc.q)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.q, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %#v, %v\nwant %#v", tc.q, got, err, tc.want)
		}
	}
}

const expo = `# TYPE m gauge
m{gpu="0",Hostname="h"} 1
m{gpu="1"} 2
# TYPE n counter
n_total 3
`

func TestFind(t *testing.T) {
	series, err := ParseExposition(strings.NewReader(expo), map[string]string{"instance": "a:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    string
		want bool
	}{
		{`m`, true},
		{`m{gpu="1"}`, true},
		{`m{gpu="2"}`, false},
		{`m{gpu=~"[01]", instance="a:1"}`, true},
		{`m{gpu!~"0|1"}`, false},
		{`m{gpu!="0", Hostname="h"}`, false},
		{`m{instance=~"$instance"}`, true},
		{`label_values(m, Hostname)`, true},
		{`label_values(n_total, Hostname)`, false},
		{`rate(n_total[5m])`, true},
		{`nope`, false},
	} {
		sels, err := Selectors(tc.q)
		if err != nil || len(sels) != 1 {
			t.Fatalf("%s: %v %v", tc.q, sels, err)
		}
		got, err := Find(series, sels[0])
		if err != nil || got != tc.want {
			t.Errorf("%s: %v %v, want %v", tc.q, got, err, tc.want)
		}
	}
}

func TestQueriesAndMissing(t *testing.T) {
	dash := []byte(`{"panels":[{"targets":[{"expr":"m{gpu=\"0\"}"},{"expr":"nope"}]},
	 {"panels":[{"targets":[{"expr":"rate(n_total[1m])"}]}]}],
	 "templating":{"list":[{"query":{"query":"label_values(m, gpu)"},"definition":"label_values(m, gpu)"},{"query":"prometheus"}]}}`)
	qs, err := Queries(dash)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"label_values(m, gpu)", "m{gpu=\"0\"}", "nope", "rate(n_total[1m])"}; !reflect.DeepEqual(qs, want) {
		t.Fatalf("queries %q, want %q", qs, want)
	}
	series, _ := ParseExposition(strings.NewReader(expo), nil)
	missing, n, err := Missing(dash, series)
	if err != nil || n != 4 || !reflect.DeepEqual(missing, []string{"nope: nope"}) {
		t.Errorf("missing %q of %d, %v", missing, n, err)
	}
	if _, err := Queries([]byte("{")); err == nil {
		t.Error("broken JSON accepted")
	}
}

func FuzzSelectors(f *testing.F) {
	for _, s := range []string{`a{b="c"}`, `sum by (x) (rate(y[5m]))`, `label_values(a, b)`, `{__name__=~"x"}`, `a{b=~"$c"} offset 1h`, `"unclosed`, `a{`, `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		sels, err := Selectors(q)
		if err != nil {
			return
		}
		for _, s := range sels {
			_ = s.String()
			_, _ = Find([]Series{{"__name__": "a", "b": "c"}}, s)
		}
	})
}
