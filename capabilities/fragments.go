package capabilities

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"
)

// Bounds on what the fragment directory may contribute.
const (
	// MaxFragmentBytes bounds one fragment file.
	MaxFragmentBytes = 256 << 10
	// MaxFragments bounds the files read from the directory.
	MaxFragments = 128
)

// Fragment is one file of the fragment directory: the parts of the
// manifest an image declares about itself.
type Fragment struct {
	Image              map[string]any
	Tools              []any
	PythonEnvironments []map[string]any
	OpenAIEndpoints    []map[string]any
}

// ParseFragment reads one fragment. An empty document is an empty
// fragment; a document that is not a mapping, or whose known keys have the
// wrong form, is an error that names the key. Unknown keys are ignored, as
// the reference ignores them. Every value is JSON-encodable.
func ParseFragment(data []byte) (Fragment, error) {
	var f Fragment
	var doc any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		return f, err
	}
	if doc == nil {
		return f, nil
	}
	top, ok := jsonable(doc).(map[string]any)
	if !ok {
		return f, fmt.Errorf("want a mapping at the top, got %s", kindOf(doc))
	}
	if v, ok := top["image"]; ok && v != nil {
		img, ok := v.(map[string]any)
		if !ok {
			return f, fmt.Errorf("image: want a mapping, got %s", kindOf(v))
		}
		f.Image = img
	}
	list := func(key string) ([]any, error) {
		v, ok := top[key]
		if !ok || v == nil {
			return nil, nil
		}
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: want a list, got %s", key, kindOf(v))
		}
		return l, nil
	}
	var err error
	if f.Tools, err = list("tools"); err != nil {
		return Fragment{}, err
	}
	maps := func(key string) ([]map[string]any, error) {
		l, err := list(key)
		if err != nil || l == nil {
			return nil, err
		}
		out := make([]map[string]any, 0, len(l))
		for i, e := range l {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: entry %d: want a mapping, got %s", key, i+1, kindOf(e))
			}
			out = append(out, m)
		}
		return out, nil
	}
	if f.PythonEnvironments, err = maps("python_environments"); err != nil {
		return Fragment{}, err
	}
	if f.OpenAIEndpoints, err = maps("openai_endpoints"); err != nil {
		return Fragment{}, err
	}
	return f, nil
}

// kindOf names a decoded YAML value's kind for a message.
func kindOf(v any) string {
	switch v.(type) {
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", v)
}

// jsonable turns a decoded YAML value into one encoding/json accepts:
// mappings with non-string keys get their keys printed.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	case float64:
		// NaN and infinities (.nan, .inf) have no JSON form.
		if t != t || t > 1.7976931348623157e308 || t < -1.7976931348623157e308 {
			return fmt.Sprint(t)
		}
	}
	return v
}

// Merge combines fragments in order, as the reference does: image keys
// are overridden one by one (the later file wins), tools and OpenAI
// endpoints are concatenated, and Python environments merge by name (or
// path): a later entry updates the earlier one's keys and adds its
// packages_of_interest to the earlier list, without duplicates.
func Merge(frags []Fragment) Fragment {
	out := Fragment{Image: map[string]any{}, Tools: []any{}, PythonEnvironments: []map[string]any{}, OpenAIEndpoints: []map[string]any{}}
	index := map[string]int{}
	for _, f := range frags {
		for k, v := range f.Image {
			out.Image[k] = v
		}
		out.Tools = append(out.Tools, f.Tools...)
		out.OpenAIEndpoints = append(out.OpenAIEndpoints, f.OpenAIEndpoints...)
		for _, env := range f.PythonEnvironments {
			name := envName(env)
			if name == "" {
				continue
			}
			i, seen := index[name]
			if !seen {
				index[name] = len(out.PythonEnvironments)
				out.PythonEnvironments = append(out.PythonEnvironments, copyMap(env))
				continue
			}
			existing := out.PythonEnvironments[i]
			poi := unionStrings(existing["packages_of_interest"], env["packages_of_interest"])
			for k, v := range env {
				if k != "packages_of_interest" {
					existing[k] = v
				}
			}
			if len(poi) > 0 {
				existing["packages_of_interest"] = poi
			}
		}
	}
	return out
}

// envName is an environment's merge key: its name, else its path.
func envName(env map[string]any) string {
	for _, k := range []string{"name", "path"} {
		if s, ok := env[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// unionStrings concatenates two YAML lists, keeping the first of each
// repeated value.
func unionStrings(a, b any) []any {
	var out []any
	seen := map[string]bool{}
	for _, l := range []any{a, b} {
		items, _ := l.([]any)
		for _, v := range items {
			key := fmt.Sprint(v)
			if !seen[key] {
				seen[key] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// LoadFragments reads dir/*.yaml in name order (at most MaxFragments
// files of MaxFragmentBytes each) and merges them. A file that cannot be
// read or parsed is left out and named in the warnings, with the reason; a
// missing directory is no fragment and no warning.
func LoadFragments(dir string) (Fragment, []string) {
	names, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return Merge(nil), []string{fmt.Sprintf("fragments %s: %v", dir, err)}
	}
	sort.Strings(names)
	var warns []string
	if len(names) > MaxFragments {
		warns = append(warns, fmt.Sprintf("fragments %s: %d files, only the first %d are read", dir, len(names), MaxFragments))
		names = names[:MaxFragments]
	}
	frags := make([]Fragment, 0, len(names))
	for _, name := range names {
		data, err := readBounded(name, MaxFragmentBytes)
		if err != nil {
			warns = append(warns, fmt.Sprintf("fragment %s: %v (left out)", name, err))
			continue
		}
		f, err := ParseFragment(data)
		if err != nil {
			warns = append(warns, fmt.Sprintf("fragment %s: %v (left out)", name, err))
			continue
		}
		frags = append(frags, f)
	}
	return Merge(frags), warns
}

// readBounded reads a regular file of at most limit bytes.
func readBounded(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// stringList reads a YAML list of strings (other items are skipped).
func stringList(v any) []string {
	items, _ := v.([]any)
	out := make([]string, 0, len(items))
	for _, e := range items {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// stringOr reads a string value, or def.
func stringOr(v any, def string) string {
	if s, ok := v.(string); ok {
		return s
	}
	return def
}
