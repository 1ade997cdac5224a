// Package apidoc turns a list of declared HTTP operations into an OpenAPI
// 3.1 document. The portal declares each of its routes once
// (caddymodules/portal_routes.go); the same declaration builds the Caddy
// route and, through this package, the document served at /openapi.json,
// so that a route cannot be served without being documented.
//
// Response and request shapes are JSON Schemas (draft 2020-12, the
// dialect OpenAPI 3.1 uses), inferred from the Go types the handlers
// encode (Schema) or written out where no type exists (Object, Array, …).
// It never imports Caddy.
package apidoc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
)

// Op is one documented operation: a method on a path template.
type Op struct {
	// Method is GET, POST, … (HEAD is implied by GET and not listed).
	Method string
	// Path is the OpenAPI path template, "/api/processes/{id}/start".
	Path string
	// Summary is one line; Description may say more.
	Summary     string
	Description string
	// Tag groups operations ("processes", "tunnels", "reference", …).
	Tag string
	// Params are the path and query parameters. Every {name} of Path
	// must have one (Check).
	Params []Param
	// Body is the request body, if the operation takes one.
	Body *Body
	// Responses, by status. At least one.
	Responses []Response
	// Deprecated marks compatibility paths kept for old clients.
	Deprecated bool
}

// Param is a path or query parameter.
type Param struct {
	Name        string
	In          string // "path" or "query"
	Description string
	Required    bool // path parameters are always required
	Schema      *jsonschema.Schema
}

// Body is a request body.
type Body struct {
	ContentType string // default application/json
	Schema      *jsonschema.Schema
	Required    bool
}

// Response is one status of an operation.
type Response struct {
	Status      int
	Description string
	// ContentType defaults to application/json; "" with a nil Schema and
	// NoBody set means no body.
	ContentType string
	Schema      *jsonschema.Schema
	NoBody      bool
}

// Info heads the document.
type Info struct {
	Title, Version, Description string
}

// Schema infers the JSON Schema of T, the Go type a handler encodes. It
// panics on a type that has none (a func, a channel): the declarations are
// code, and a test builds them all.
func Schema[T any]() *jsonschema.Schema {
	s, err := jsonschema.For[T](&jsonschema.ForOptions{IgnoreInvalidTypes: true})
	if err != nil {
		panic(fmt.Sprintf("apidoc: %v", err))
	}
	return s
}

// String, Integer, Boolean, Text: the plain schemas.
func String(desc string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Description: desc}
}
func Integer(desc string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "integer", Description: desc}
}
func Boolean(desc string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "boolean", Description: desc}
}

// Enum is a string among values.
func Enum(desc string, values ...string) *jsonschema.Schema {
	s := String(desc)
	for _, v := range values {
		s.Enum = append(s.Enum, v)
	}
	return s
}

// Object is an object with the given properties; required lists the
// names that must be present. Other properties are allowed.
func Object(props map[string]*jsonschema.Schema, required ...string) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "object", Properties: props, Required: required}
}

// Array is a list of items.
func Array(items *jsonschema.Schema) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "array", Items: items}
}

// ErrorBody is {"error": "…"}, every JSON API error of the portal.
func ErrorBody() *jsonschema.Schema {
	return Object(map[string]*jsonschema.Schema{"error": String("what was wrong")}, "error")
}

// PathParam is a required path parameter of type string.
func PathParam(name, desc string) Param {
	return Param{Name: name, In: "path", Required: true, Description: desc, Schema: String("")}
}

// QueryParam is an optional query parameter.
func QueryParam(name, desc string, schema *jsonschema.Schema) Param {
	return Param{Name: name, In: "query", Description: desc, Schema: schema}
}

// OK is a 200 JSON response of the given shape.
func OK(desc string, schema *jsonschema.Schema) Response {
	return Response{Status: http.StatusOK, Description: desc, Schema: schema}
}

// Err is an error response with the {"error"} body.
func Err(status int, desc string) Response {
	return Response{Status: status, Description: desc, Schema: ErrorBody()}
}

var templateParam = regexp.MustCompile(`\{([^{}/]+)\}`)

// Check reports what is wrong with the operations: a bad method or path, a
// duplicate method and path, a path parameter without a declaration (or
// the reverse), an operation without a response.
func Check(ops []Op) error {
	var errs []error
	seen := map[string]bool{}
	for _, op := range ops {
		where := op.Method + " " + op.Path
		switch op.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
		default:
			errs = append(errs, fmt.Errorf("%s: method %q: want GET, POST, PUT, DELETE or PATCH", where, op.Method))
		}
		if !strings.HasPrefix(op.Path, "/") || strings.ContainsAny(op.Path, "*? ") {
			errs = append(errs, fmt.Errorf("%s: path must start with / and hold no *, ? or space", where))
		}
		if seen[where] {
			errs = append(errs, fmt.Errorf("%s: declared twice", where))
		}
		seen[where] = true
		if op.Summary == "" {
			errs = append(errs, fmt.Errorf("%s: no summary", where))
		}
		if len(op.Responses) == 0 {
			errs = append(errs, fmt.Errorf("%s: no response", where))
		}
		inPath := map[string]bool{}
		for _, m := range templateParam.FindAllStringSubmatch(op.Path, -1) {
			inPath[m[1]] = true
		}
		declared := map[string]bool{}
		for _, p := range op.Params {
			switch p.In {
			case "path":
				declared[p.Name] = true
				if !inPath[p.Name] {
					errs = append(errs, fmt.Errorf("%s: path parameter %q is not in the path", where, p.Name))
				}
			case "query":
			default:
				errs = append(errs, fmt.Errorf("%s: parameter %q: in %q: want path or query", where, p.Name, p.In))
			}
		}
		for name := range inPath {
			if !declared[name] {
				errs = append(errs, fmt.Errorf("%s: path parameter {%s} is not declared", where, name))
			}
		}
	}
	return errors.Join(errs...)
}

// Document is the OpenAPI 3.1 document of the operations, as JSON.
func Document(info Info, ops []Op) ([]byte, error) {
	if err := Check(ops); err != nil {
		return nil, err
	}
	paths := map[string]map[string]any{}
	tags := map[string]bool{}
	for _, op := range ops {
		item := paths[op.Path]
		if item == nil {
			item = map[string]any{}
			paths[op.Path] = item
		}
		item[strings.ToLower(op.Method)] = operation(op)
		if op.Tag != "" {
			tags[op.Tag] = true
		}
	}
	tagList := make([]map[string]string, 0, len(tags))
	for _, t := range slices.Sorted(mapKeys(tags)) {
		tagList = append(tagList, map[string]string{"name": t})
	}
	doc := map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info":              map[string]string{"title": info.Title, "version": info.Version, "description": info.Description},
		"paths":             paths,
		"tags":              tagList,
		"components": map[string]any{"securitySchemes": map[string]any{
			"bearer": map[string]string{"type": "http", "scheme": "bearer",
				"description": "the instance token (OPEN_BUTTON_TOKEN or WEB_PASSWORD) through an external port; none on 127.0.0.1"},
			"cookie": map[string]string{"type": "apiKey", "in": "cookie", "name": "<VAST_CONTAINERLABEL>_auth_token"},
			"basic":  map[string]string{"type": "http", "scheme": "basic"},
		}},
		"security": []map[string][]string{{"bearer": {}}, {"cookie": {}}, {"basic": {}}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func operation(op Op) map[string]any {
	o := map[string]any{
		"summary":     op.Summary,
		"operationId": operationID(op),
	}
	if op.Description != "" {
		o["description"] = op.Description
	}
	if op.Tag != "" {
		o["tags"] = []string{op.Tag}
	}
	if op.Deprecated {
		o["deprecated"] = true
	}
	if len(op.Params) > 0 {
		params := make([]map[string]any, 0, len(op.Params))
		for _, p := range op.Params {
			schema := p.Schema
			if schema == nil {
				schema = String("")
			}
			pm := map[string]any{"name": p.Name, "in": p.In, "schema": schema}
			if p.Description != "" {
				pm["description"] = p.Description
			}
			if p.In == "path" || p.Required {
				pm["required"] = true
			}
			params = append(params, pm)
		}
		o["parameters"] = params
	}
	if op.Body != nil {
		ct := op.Body.ContentType
		if ct == "" {
			ct = "application/json"
		}
		o["requestBody"] = map[string]any{
			"required": op.Body.Required,
			"content":  map[string]any{ct: map[string]any{"schema": op.Body.Schema}},
		}
	}
	responses := map[string]any{}
	rs := slices.Clone(op.Responses)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Status < rs[j].Status })
	for _, r := range rs {
		desc := r.Description
		if desc == "" {
			desc = http.StatusText(r.Status)
		}
		rm := map[string]any{"description": desc}
		if !r.NoBody {
			ct := r.ContentType
			if ct == "" {
				ct = "application/json"
			}
			media := map[string]any{}
			if r.Schema != nil {
				media["schema"] = r.Schema
			}
			rm["content"] = map[string]any{ct: media}
		}
		responses[strconv.Itoa(r.Status)] = rm
	}
	o["responses"] = responses
	return o
}

// operationID is method plus path, in words: "post_api_processes_id_start".
func operationID(op Op) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(op.Method))
	for _, r := range op.Path {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		case r == '/' || r == '-' || r == '.' || r == '_':
			if !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

// Covers says whether the Caddy path pattern (the path matcher's syntax:
// exact, "/prefix/*", "*suffix" or "*") matches some path the template
// produces, treating each {param} as any one non-empty segment.
func Covers(pattern, template string) bool {
	sample := templateParam.ReplaceAllString(template, "x")
	return Match(pattern, sample)
}

// Match is Caddy's path matching for the patterns the portal uses: exact,
// a trailing * (prefix), a leading * (suffix), or * alone. Case-insensitive,
// as Caddy's.
func Match(pattern, path string) bool {
	pattern, path = strings.ToLower(pattern), strings.ToLower(path)
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*") && !strings.HasPrefix(pattern, "*"):
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*") && !strings.HasSuffix(pattern, "*"):
		return strings.HasSuffix(path, strings.TrimPrefix(pattern, "*"))
	case strings.Contains(pattern, "*"):
		return strings.Contains(path, strings.Trim(pattern, "*"))
	}
	return pattern == path
}

// Sample fills each {param} of the template with values[param], or "x".
func Sample(template string, values map[string]string) string {
	return templateParam.ReplaceAllStringFunc(template, func(m string) string {
		if v, ok := values[m[1:len(m)-1]]; ok {
			return v
		}
		return "x"
	})
}
