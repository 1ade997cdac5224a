package supervisor

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func respond(value string) string {
	return "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n" + value + "\n</param>\n</params>\n</methodResponse>\n"
}

func TestParseResponseValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"typed string", respond("<value><string>a &lt;b&gt; &amp; c</string></value>"), "a <b> & c"},
		{"untyped text is a string", respond("<value>plain</value>"), "plain"},
		{"empty value is an empty string", respond("<value></value>"), ""},
		{"string keeps its spaces", respond("<value><string>  x  </string></value>"), "  x  "},
		{"int", respond("<value><int>42</int></value>"), int64(42)},
		{"i4 negative", respond("<value><i4>-7</i4></value>"), int64(-7)},
		{"i8 beyond 32 bits", respond("<value><i8>8589934592</i8></value>"), int64(8589934592)},
		{"boolean true", respond("<value><boolean>1</boolean></value>"), true},
		{"boolean false", respond("<value><boolean>0</boolean></value>"), false},
		{"double", respond("<value><double>1.5</double></value>"), 1.5},
		{"dateTime", respond("<value><dateTime.iso8601>20260101T10:00:00</dateTime.iso8601></value>"), "20260101T10:00:00"},
		{"base64", respond("<value><base64>aGVs\nbG8=</base64></value>"), []byte("hello")},
		{"nil", respond("<value><nil/></value>"), nil},
		{"empty array", respond("<value><array><data></data></array></value>"), []any{}},
		{"array", respond("<value><array><data><value><int>1</int></value><value>two</value></data></array></value>"), []any{int64(1), "two"}},
		{"struct", respond("<value><struct><member><name>a</name><value><int>1</int></value></member>" +
			"<member><name>b</name><value><array><data><value><boolean>1</boolean></value></data></array></value></member></struct></value>"),
			map[string]any{"a": int64(1), "b": []any{true}}},
		{"whitespace around the typed element", respond("<value>\n  <int>3</int>\n</value>"), int64(3)},
		{"comments are ignored", respond("<!-- c --><value><int>3</int><!-- d --></value>"), int64(3)},
		{"utf-8 declaration", `<?xml version="1.0" encoding="UTF-8"?>` + "<methodResponse><params><param><value>é</value></param></params></methodResponse>", "é"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseResponse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("parseResponse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseResponseFault(t *testing.T) {
	in := `<?xml version='1.0'?>
<methodResponse>
<fault>
<value><struct>
<member>
<name>faultCode</name>
<value><int>10</int></value>
</member>
<member>
<name>faultString</name>
<value><string>BAD_NAME: nosuch</string></value>
</member>
</struct></value>
</fault>
</methodResponse>
`
	_, err := parseResponse(strings.NewReader(in))
	var f *Fault
	if !errors.As(err, &f) {
		t.Fatalf("want a *Fault, got %v", err)
	}
	if f.Code != FaultBadName || f.String != "BAD_NAME: nosuch" || f.Error() != "BAD_NAME: nosuch" {
		t.Fatalf("fault = %+v", f)
	}
}

func TestParseResponseErrors(t *testing.T) {
	deep := strings.Repeat("<value><array><data>", maxValueDepth+1) + "<value>x</value>" + strings.Repeat("</data></array></value>", maxValueDepth+1)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "unexpected end of document"},
		{"not xml-rpc", "<html></html>", "want <methodResponse>, got <html>"},
		{"no params", "<methodResponse></methodResponse>", "want <params> or <fault>, got </methodResponse>"},
		{"other element", "<methodResponse><foo/></methodResponse>", "want <params> or <fault>, got <foo>"},
		{"two params", respond("<value>a</value></param><param><value>b</value>"), "want </params>, got <param>"},
		{"bad int", respond("<value><int>4x</int></value>"), "<int>4x</int>: not an integer"},
		{"bad boolean", respond("<value><boolean>yes</boolean></value>"), "<boolean>yes</boolean>: want 0 or 1"},
		{"bad double", respond("<value><double>one</double></value>"), "<double>one</double>: not a number"},
		{"bad base64", respond("<value><base64>!!</base64></value>"), "<base64>: illegal base64"},
		{"unknown type", respond("<value><long>1</long></value>"), "unknown value type <long>"},
		{"two elements in a value", respond("<value><int>1</int><int>2</int></value>"), "<value> holds more than one element"},
		{"mixed content", respond("<value>x<int>1</int></value>"), "<value> mixes text and an element"},
		{"element in a string", respond("<value><string>a<b/></string></value>"), "<string> must hold text only, got <b>"},
		{"nil with content", respond("<value><nil>x</nil></value>"), "<nil> must be empty"},
		{"array without data", respond("<value><array><value>1</value></array></value>"), "want <data>, got <value>"},
		{"struct member without name", respond("<value><struct><member><value>1</value></member></struct></value>"), "want <name>, got <value>"},
		{"struct with a stray element", respond("<value><struct><x/></struct></value>"), "<struct> holds <x>, want <member>"},
		{"duplicate member", respond("<value><struct><member><name>a</name><value>1</value></member><member><name>a</name><value>2</value></member></struct></value>"), `member "a" twice`},
		{"text between elements", "<methodResponse>junk<params/></methodResponse>", `unexpected text "junk"`},
		{"trailing element", respond("<value>a</value>") + "<extra/>", "<extra> after </methodResponse>"},
		{"trailing text", respond("<value>a</value>") + "tail", "text after </methodResponse>"},
		{"unclosed", "<methodResponse><params><param><value><string>a", "unexpected EOF"},
		{"mismatched tags", "<methodResponse><params></param></methodResponse>", "element <params> closed by </param>"},
		{"doctype", "<!DOCTYPE x><methodResponse/>", "unexpected directive"},
		{"namespaced element", respond("<value><x:int xmlns:x='u'>1</x:int></value>"), "unexpected element <u:int>"},
		{"unknown entity", respond("<value>&foo;</value>"), "invalid character entity &foo;"},
		{"other charset", `<?xml version="1.0" encoding="ISO-8859-2"?><methodResponse/>`, `charset "ISO-8859-2": want utf-8`},
		{"too deep", respond(deep), fmt.Sprintf("values nested deeper than %d", maxValueDepth)},
		{"fault not a struct", "<methodResponse><fault><value>x</value></fault></methodResponse>", "fault: want a struct, got a string"},
		{"fault code not an int", "<methodResponse><fault><value><struct><member><name>faultCode</name><value>x</value></member>" +
			"<member><name>faultString</name><value>s</value></member></struct></value></fault></methodResponse>", "faultCode: want an int, got a string"},
		{"fault without string", "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1</int></value></member>" +
			"</struct></value></fault></methodResponse>", "faultString: want a string, got nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parseResponse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("want an error containing %q, got value %#v", tt.want, v)
			}
			if !errors.Is(err, errXMLRPC) {
				t.Errorf("error %v does not wrap errXMLRPC", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestEncodeCall(t *testing.T) {
	got, err := encodeCall("supervisor.stopProcess", "a<b>&c", true, 7, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0"?>` + "\n<methodCall><methodName>supervisor.stopProcess</methodName><params>" +
		"<param><value><string>a&lt;b&gt;&amp;c</string></value></param>" +
		"<param><value><boolean>1</boolean></value></param>" +
		"<param><value><int>7</int></value></param>" +
		"<param><value><boolean>0</boolean></value></param>" +
		"</params></methodCall>\n"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := encodeCall("m", 1.5); err == nil || err.Error() != "xml-rpc: parameter 1: unsupported type float64" {
		t.Fatalf("float parameter: got %v", err)
	}
}

// encodeValue renders a decoded value back as XML-RPC, in a canonical form
// (typed elements, sorted struct members), for the round-trip property.
func encodeValue(b *bytes.Buffer, v any) {
	b.WriteString("<value>")
	switch x := v.(type) {
	case nil:
		b.WriteString("<nil/>")
	case string:
		b.WriteString("<string>")
		escapeForTest(b, x)
		b.WriteString("</string>")
	case int64:
		b.WriteString("<i8>" + strconv.FormatInt(x, 10) + "</i8>")
	case bool:
		if x {
			b.WriteString("<boolean>1</boolean>")
		} else {
			b.WriteString("<boolean>0</boolean>")
		}
	case float64:
		b.WriteString("<double>" + strconv.FormatFloat(x, 'g', -1, 64) + "</double>")
	case []byte:
		b.WriteString("<base64>" + base64Std(x) + "</base64>")
	case []any:
		b.WriteString("<array><data>")
		for _, e := range x {
			encodeValue(b, e)
		}
		b.WriteString("</data></array>")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("<struct>")
		for _, k := range keys {
			b.WriteString("<member><name>")
			escapeForTest(b, k)
			b.WriteString("</name>")
			encodeValue(b, x[k])
			b.WriteString("</member>")
		}
		b.WriteString("</struct>")
	}
	b.WriteString("</value>")
}

// FuzzParseResponse feeds arbitrary documents to the parser. Properties:
// it never panics; it returns exactly one of a value, a *Fault or an error
// wrapping errXMLRPC; and a value it accepts, written back out canonically,
// parses to the same value (nothing is lost or invented).
func FuzzParseResponse(f *testing.F) {
	seeds := []string{
		respond("<value><string>x</string></value>"),
		respond("<value><array><data><value><struct><member><name>name</name><value><string>jupyter</string></value></member>" +
			"<member><name>pid</name><value><int>42</int></value></member><member><name>now</name><value><int>1700000000</int></value></member>" +
			"</struct></value></data></array></value>"),
		respond("<value><boolean>1</boolean></value>"),
		respond("<value><base64>aGk=</base64></value>"),
		respond("<value><double>-0.5</double></value>"),
		respond("<value><nil/></value>"),
		"<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>70</int></value></member>" +
			"<member><name>faultString</name><value><string>NOT_RUNNING: x</string></value></member></struct></value></fault></methodResponse>",
		respond("<value>&lt;&#65;&#x42;</value>"),
		"<methodResponse><params><param><value><array><data><value><array><data></data></array></value></data></array></value></param></params></methodResponse>",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseResponse(bytes.NewReader(data))
		if err != nil {
			var fault *Fault
			if v != nil {
				t.Fatalf("value %#v returned with error %v", v, err)
			}
			if !errors.As(err, &fault) && !errors.Is(err, errXMLRPC) {
				t.Fatalf("error %v is neither a fault nor an xml-rpc answer error", err)
			}
			return
		}
		if !wellFormedValue(v, 0) {
			t.Fatalf("value %#v holds a type the parser must not produce", v)
		}
		var b bytes.Buffer
		b.WriteString("<methodResponse><params><param>")
		encodeValue(&b, v)
		b.WriteString("</param></params></methodResponse>")
		again, err := parseResponse(&b)
		if err != nil {
			t.Fatalf("canonical form of %#v does not parse: %v\n%s", v, err, b.String())
		}
		if !sameValue(v, again) {
			t.Fatalf("round trip changed the value:\n%#v\n%#v", v, again)
		}
	})
}

// wellFormedValue checks the types and the depth bound.
func wellFormedValue(v any, depth int) bool {
	if depth > maxValueDepth {
		return false
	}
	switch x := v.(type) {
	case nil, string, int64, bool, float64, []byte:
		return true
	case []any:
		for _, e := range x {
			if !wellFormedValue(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !wellFormedValue(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// sameValue is reflect.DeepEqual, except that NaN equals NaN.
func sameValue(a, b any) bool {
	if fa, ok := a.(float64); ok {
		fb, ok := b.(float64)
		return ok && (fa == fb || math.IsNaN(fa) && math.IsNaN(fb))
	}
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			if f, ok := y[k]; !ok || !sameValue(e, f) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func escapeForTest(b *bytes.Buffer, s string) {
	if err := xml.EscapeText(b, []byte(s)); err != nil {
		panic(err)
	}
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// BenchmarkParseGetAllProcessInfo decodes an answer the size of a busy
// image's (20 programs), as every /api/processes and /api/apps request does.
func BenchmarkParseGetAllProcessInfo(b *testing.B) {
	var doc strings.Builder
	doc.WriteString("<?xml version='1.0'?>\n<methodResponse><params><param><value><array><data>\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&doc, `<value><struct>
<member><name>name</name><value><string>program-%d</string></value></member>
<member><name>group</name><value><string>program-%d</string></value></member>
<member><name>start</name><value><int>1764590000</int></value></member>
<member><name>stop</name><value><int>0</int></value></member>
<member><name>now</name><value><int>1764590600</int></value></member>
<member><name>state</name><value><int>20</int></value></member>
<member><name>statename</name><value><string>RUNNING</string></value></member>
<member><name>spawnerr</name><value><string></string></value></member>
<member><name>exitstatus</name><value><int>0</int></value></member>
<member><name>logfile</name><value><string>/dev/stdout</string></value></member>
<member><name>stdout_logfile</name><value><string>/dev/stdout</string></value></member>
<member><name>stderr_logfile</name><value><string></string></value></member>
<member><name>pid</name><value><int>%d</int></value></member>
<member><name>description</name><value><string>pid %d, uptime 0:10:00</string></value></member>
</struct></value>
`, i, i, 100+i, 100+i)
	}
	doc.WriteString("</data></array></value></param></params></methodResponse>\n")
	data := []byte(doc.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		v, err := parseResponse(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for _, item := range v.([]any) {
			if _, err := processFromValue(item); err != nil {
				b.Fatal(err)
			}
		}
	}
}
