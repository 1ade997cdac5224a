package capabilities

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// FuzzParseModels: whatever a local server answers, the ids kept are
// bounded in count and size, valid UTF-8, and an answer is accepted only
// when encoding/json also reads it as an object with a "data" list.
func FuzzParseModels(f *testing.F) {
	for _, s := range []string{
		`{"object":"list","data":[{"id":"a"},{"id":"b"}]}`, `{"data":[]}`, `{"data":null}`, `[]`, `{"data":[1,"x",{"id":3}]}`,
		`{"data":[{"id":"` + strings.Repeat("é", 150) + `"}]}`, `not json`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		models, ok := ParseModels(bytes.NewReader(data), 3)
		if !ok {
			return
		}
		var ref struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&ref); err != nil || ref.Data == nil {
			t.Fatalf("accepted %q, which encoding/json does not read as a model list (%v)", data, err)
		}
		if len(models) > 3 {
			t.Fatalf("%d models kept, bound 3", len(models))
		}
		for _, m := range models {
			if len(m) > 200 || !utf8.ValidString(m) || m == "" {
				t.Fatalf("model id %q", m)
			}
		}
	})
}

// FuzzDecodeProvisionRequest: a request that is accepted gives a manifest
// that is a YAML mapping, with no pip option and only http(s) URLs.
func FuzzDecodeProvisionRequest(f *testing.F) {
	for _, s := range []string{
		`{"pip":["requests"]}`, `{"git_repos":["https://h/r|/d|v1"]}`, `{"downloads":["https://h/f|/m/f"]}`,
		`{"inline_yaml":"version: 1\n"}`, `{"manifest_url":"https://h/m.yaml"}`, `{"pip":["-e ."]}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeProvisionRequest(bytes.NewReader(data))
		if err != nil || req.ManifestURL != "" {
			return
		}
		body, err := req.ManifestYAML()
		if err != nil {
			t.Fatalf("accepted %q but no manifest: %v", data, err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(body, &doc); err != nil {
			t.Fatalf("manifest of %q is not a YAML mapping: %v\n%s", data, err, body)
		}
		for _, p := range req.Pip {
			if strings.HasPrefix(strings.TrimSpace(p), "-") {
				t.Fatalf("pip option %q accepted", p)
			}
		}
		for _, l := range [][]string{req.GitRepos, req.Downloads} {
			for _, item := range l {
				if u, _, _ := strings.Cut(item, "|"); !strings.HasPrefix(strings.ToLower(strings.TrimSpace(u)), "http") {
					t.Fatalf("URL %q accepted", u)
				}
			}
		}
	})
}
