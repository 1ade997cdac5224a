package confdecl

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// DocTable renders the settings of the struct type typeName, declared in
// the Go package in dir, as a Markdown table: JSON key, type, default (read
// from def, the package's Default()) and the field's godoc. The docs embed
// the table between markers and a test regenerates it, so the docs cannot
// drift from the declaration.
//
// A godoc that states "Default: X" must agree with def: X must begin with
// the default as the table writes it (or say "none" for a zero default).
// Otherwise DocTable fails, naming the field.
func DocTable(dir, typeName string, def any) (string, error) {
	st, err := findStruct(dir, typeName)
	if err != nil {
		return "", err
	}
	docs := map[string]string{}
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 || f.Doc == nil {
			continue
		}
		docs[f.Names[0].Name] = strings.Join(strings.Fields(f.Doc.Text()), " ")
	}
	rv := reflect.ValueOf(def)
	var b strings.Builder
	b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
	for _, f := range Fields(def) {
		doc, ok := docs[f.Go]
		if !ok {
			if len(f.Index) > 1 {
				continue // from an embedded struct of another package: its own table
			}
			return "", fmt.Errorf("%s.%s (%s): no godoc", typeName, f.Go, f.JSON)
		}
		dflt := formatDefault(rv.FieldByIndex(f.Index))
		text, stated, hasStated := strings.Cut(doc, "Default: ")
		if hasStated {
			stated = strings.TrimSuffix(strings.TrimSpace(stated), ".")
			want := dflt
			if want == "—" {
				want = "none"
			}
			if !strings.HasPrefix(strings.Trim(stated, "`"), strings.Trim(want, "`")) {
				return "", fmt.Errorf("%s.%s (%s): godoc says \"Default: %s\" but Default() gives %s", typeName, f.Go, f.JSON, stated, want)
			}
			if extra := strings.TrimSpace(strings.TrimPrefix(strings.Trim(stated, "`"), strings.Trim(want, "`"))); extra != "" {
				text = strings.TrimSpace(text) + " Default " + strings.TrimLeft(extra, " ,;:") + "."
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.JSON, typeWord(f.Type), dflt, escapeCell(strings.TrimSpace(text)))
	}
	return b.String(), nil
}

func findStruct(dir, typeName string) (*ast.StructType, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		file, err := parser.ParseFile(fset, name, src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gd.Specs {
				ts, ok := spec.(*ast.TypeSpec)
				if !ok || ts.Name.Name != typeName {
					continue
				}
				if st, ok := ts.Type.(*ast.StructType); ok {
					return st, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no struct type %s in %s", typeName, dir)
}

var durationType = reflect.TypeOf(Duration(0))

func typeWord(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "integer"
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		return "number"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list of strings"
	case t.Kind() == reflect.Slice:
		return "list"
	case t.Kind() == reflect.Pointer:
		return typeWord(t.Elem())
	default:
		return "object"
	}
}

func formatDefault(v reflect.Value) string {
	if v.IsZero() {
		return "—"
	}
	if v.Type() == durationType {
		return "`" + v.Interface().(Duration).String() + "`"
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return "?"
	}
	s := string(b)
	if v.Kind() == reflect.String {
		s = v.String()
	}
	return "`" + s + "`"
}

func escapeCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// ReplaceBetween replaces what lies between the lines "<!-- begin NAME -->"
// and "<!-- end NAME -->" in doc with body, for the tests that keep
// generated tables in the docs. It fails when the markers are missing.
func ReplaceBetween(doc, name, body string) (string, error) {
	begin, end := "<!-- begin "+name+" -->\n", "<!-- end "+name+" -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("markers %q … %q not found", strings.TrimSpace(begin), end)
	}
	return doc[:i+len(begin)] + body + doc[j:], nil
}
