package confdecl

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"90s", 90 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"1.5d", 36 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"-2d", -48 * time.Hour, ""},
		{"0", 0, ""},
		{"d", 0, "number of days"},
		{"1d-1h", 0, "only the day count may carry a sign"},
		{"+-1d", 0, "number of days"},
		{"NaNd", 0, "number of days"},
		{"1e300d", 0, "too large"},
		{"1dx", 0, `invalid duration "x"`},
		{"10 minutes", 0, "unknown unit"},
		{strings.Repeat("1", 100) + "s", 0, "too long"},
	} {
		got, err := ParseDuration(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseDuration(%q): %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseDuration(%q) error = %v, want it to contain %q", tc.in, err, tc.err)
		case tc.err == "" && got != tc.want:
			t.Errorf("ParseDuration(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	var v struct {
		A Duration `json:"a"`
		B Duration `json:"b"`
	}
	if err := json.Unmarshal([]byte(`{"a":"1d2h","b":1500000000}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.Std() != 26*time.Hour || v.B.Std() != 1500*time.Millisecond {
		t.Fatalf("got %v %v", v.A, v.B)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"a":"26h","b":"1.5s"}` {
		t.Fatalf("marshal = %s", out)
	}
	for _, bad := range []string{`{"a":true}`, `{"a":"soon"}`, `{"a":1.5}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

func TestDurationString(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Minute:                  "1m",
		90 * time.Minute:             "1h30m",
		time.Hour:                    "1h",
		7 * 24 * time.Hour:           "7d",
		25 * time.Hour:               "25h",
		500 * time.Millisecond:       "500ms",
		5*time.Minute + time.Second:  "5m1s",
		0:                            "0s",
		-2 * time.Minute:             "-2m",
		24*time.Hour + 1*time.Second: "24h0m1s",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("%v: String() = %q, want %q", d, got, want)
		}
		back, err := ParseDuration(Duration(d).String())
		if err != nil || back != d {
			t.Errorf("%v: round trip gave %v, %v", d, back, err)
		}
	}
}

type inner struct {
	X int    `json:"x,omitempty"`
	Y string `json:"y,omitempty"`
}

type sample struct {
	Name    string   `json:"name,omitempty"`
	Wait    Duration `json:"wait,omitempty"`
	List    []string `json:"list,omitempty"`
	On      bool     `json:"on,omitempty"`
	Nested  inner    `json:"nested,omitempty"`
	Skipped int      `json:"-"`
}

func TestFillDefaults(t *testing.T) {
	t.Parallel()
	def := sample{Name: "d", Wait: Duration(time.Second), List: []string{"a"}, On: true, Nested: inner{X: 1, Y: "y"}, Skipped: 9}
	got := sample{Name: "mine", Nested: inner{Y: "set"}}
	FillDefaults(&got, def)
	if got.Name != "mine" || got.Wait != def.Wait || len(got.List) != 1 || !got.On || got.Nested.X != 1 || got.Nested.Y != "set" {
		t.Fatalf("FillDefaults = %+v", got)
	}
}

type embedding struct {
	sample
	Extra string `json:"extra"`
}

func TestFields(t *testing.T) {
	t.Parallel()
	var names []string
	for _, f := range Fields(&embedding{}) {
		names = append(names, f.JSON)
	}
	if got := strings.Join(names, ","); got != "name,wait,list,on,nested,extra" {
		t.Fatalf("Fields = %s", got)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	var c Check
	c.NotNegative("queue", -1)
	c.DurationAtLeast("interval", Duration(time.Millisecond), Duration(100*time.Millisecond))
	c.OneOf("format", "xml", "json", "prometheus")
	c.NotNegative("fine", 3)
	err := c.Err()
	for _, want := range []string{"queue: must not be negative, got -1", "interval: must be at least 100ms, got 1ms", `format: "xml": want json, prometheus`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %v, want it to contain %q", err, want)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "queue" {
		t.Errorf("errors.As FieldError = %+v", fe)
	}
	var ok Check
	if ok.Err() != nil {
		t.Error("an empty Check must pass")
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1d", "1.5d12h", "90s", "-3d", "d", "1d-1s", "0.0000001d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		// What parses formats back to the same value.
		back, err := ParseDuration(Duration(d).String())
		if err != nil || back != d {
			t.Fatalf("%q → %v → %q → %v, %v", s, d, Duration(d).String(), back, err)
		}
	})
}

func TestName(t *testing.T) {
	t.Parallel()
	var e embedding
	if got := Name(&e, &e.Wait); got != "wait" {
		t.Errorf("Name(Wait) = %q", got)
	}
	if got := Name(&e, &e.Extra); got != "extra" {
		t.Errorf("Name(Extra) = %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("a pointer to something else must panic")
		}
	}()
	var other int
	Name(&e, &other)
}
