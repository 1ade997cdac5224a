package apidoc

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		pattern, template string
		want              bool
	}{
		{"/api/apps", "/api/apps", true},
		{"/api/apps", "/api/apps/x", false},
		{"/api/processes/*", "/api/processes/{id}/start", true},
		{"/api/processes/*", "/api/processes", false},
		{"/api/processes", "/api/processes", true},
		{"/start-quick-tunnel/*", "/start-quick-tunnel/{target}", true},
		{"*", "/anything", true},
		{"*.json", "/openapi.json", true},
		{"/API/Apps", "/api/apps", true},
	} {
		if got := Covers(c.pattern, c.template); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.pattern, c.template, got, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	ok := OK("", String(""))
	for name, c := range map[string]struct {
		ops  []Op
		want string
	}{
		"good":          {[]Op{{Method: "GET", Path: "/a/{id}", Summary: "s", Params: []Param{PathParam("id", "")}, Responses: []Response{ok}}}, ""},
		"bad method":    {[]Op{{Method: "FETCH", Path: "/a", Summary: "s", Responses: []Response{ok}}}, `method "FETCH"`},
		"wildcard":      {[]Op{{Method: "GET", Path: "/a/*", Summary: "s", Responses: []Response{ok}}}, "hold no *"},
		"twice":         {[]Op{{Method: "GET", Path: "/a", Summary: "s", Responses: []Response{ok}}, {Method: "GET", Path: "/a", Summary: "s", Responses: []Response{ok}}}, "declared twice"},
		"undeclared":    {[]Op{{Method: "GET", Path: "/a/{id}", Summary: "s", Responses: []Response{ok}}}, "{id} is not declared"},
		"not in path":   {[]Op{{Method: "GET", Path: "/a", Summary: "s", Params: []Param{PathParam("id", "")}, Responses: []Response{ok}}}, `"id" is not in the path`},
		"no response":   {[]Op{{Method: "GET", Path: "/a", Summary: "s"}}, "no response"},
		"no summary":    {[]Op{{Method: "GET", Path: "/a", Responses: []Response{ok}}}, "no summary"},
		"bad param loc": {[]Op{{Method: "GET", Path: "/a", Summary: "s", Params: []Param{{Name: "x", In: "header"}}, Responses: []Response{ok}}}, `in "header"`},
	} {
		err := Check(c.ops)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
}

type sample struct {
	Name  string   `json:"name"`
	Count *int     `json:"count,omitempty"`
	Tags  []string `json:"tags"`
}

func TestDocument(t *testing.T) {
	doc, err := Document(Info{Title: "T", Version: "1"}, []Op{
		{Method: http.MethodGet, Path: "/things/{id}", Summary: "one thing", Tag: "things",
			Params:    []Param{PathParam("id", "which"), QueryParam("full", "", Boolean(""))},
			Responses: []Response{OK("the thing", Schema[sample]()), Err(404, "")}},
		{Method: http.MethodPost, Path: "/things", Summary: "make", Body: &Body{Schema: Object(nil)},
			Responses: []Response{{Status: 204, NoBody: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	if d["openapi"] != "3.1.0" {
		t.Errorf("openapi %v", d["openapi"])
	}
	s := string(doc)
	for _, want := range []string{`"get_things_id"`, `"required": true`, `"name": "full"`, `"Not Found"`, `"204"`, `"count"`, `"tags"`} {
		if !strings.Contains(s, want) {
			t.Errorf("document lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, `"content"`+": {}") {
		t.Errorf("empty content object in %s", s)
	}
}
