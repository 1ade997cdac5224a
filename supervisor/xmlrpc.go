package supervisor

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The XML-RPC codec: just what supervisord's interface needs. A call's
// parameters are strings, booleans and integers; an answer is any XML-RPC
// value, decoded into plain Go values:
//
//	<string> or untyped text  string
//	<int> <i4> <i8>           int64
//	<boolean>                 bool
//	<double>                  float64
//	<dateTime.iso8601>        string (as sent; supervisord sends none)
//	<base64>                  []byte
//	<nil/>                    nil
//	<array>                   []any
//	<struct>                  map[string]any
//
// No maintained Go XML-RPC client is served by the module proxy here (the
// one served, kolo/xmlrpc, has had no change since 2022), and this subset
// is small enough to own, fuzz and bound.

// maxValueDepth bounds how deeply arrays and structs may nest in an answer,
// so a hostile or broken peer cannot make the recursive parser run deep.
// supervisord's deepest answer (getAllProcessInfo) nests three levels.
const maxValueDepth = 32

// Fault is an XML-RPC fault answer. supervisord's faultString names the
// cause ("BAD_NAME: nosuch", "ALREADY_STARTED: jupyter"); it is shown to
// the user as is.
type Fault struct {
	Code   int
	String string
}

func (f *Fault) Error() string { return f.String }

// Fault codes of supervisord's rpcinterface (supervisor/xmlrpc.py, Faults)
// that the portal treats specially.
const (
	FaultBadName             = 10
	FaultNoFile              = 20
	FaultNotExecutable       = 21
	FaultFailed              = 30
	FaultAbnormalTermination = 40
	FaultSpawnError          = 50
	FaultAlreadyStarted      = 60
	FaultNotRunning          = 70
	FaultShutdownState       = 6
)

// encodeCall renders a methodCall. Parameters may be string, bool or int.
func encodeCall(method string, params ...any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n<methodCall><methodName>")
	if err := xml.EscapeText(&b, []byte(method)); err != nil {
		return nil, err
	}
	b.WriteString("</methodName><params>")
	for i, p := range params {
		b.WriteString("<param><value>")
		switch v := p.(type) {
		case string:
			b.WriteString("<string>")
			if err := xml.EscapeText(&b, []byte(v)); err != nil {
				return nil, err
			}
			b.WriteString("</string>")
		case bool:
			if v {
				b.WriteString("<boolean>1</boolean>")
			} else {
				b.WriteString("<boolean>0</boolean>")
			}
		case int:
			b.WriteString("<int>" + strconv.Itoa(v) + "</int>")
		default:
			return nil, fmt.Errorf("xml-rpc: parameter %d: unsupported type %T", i+1, p)
		}
		b.WriteString("</value></param>")
	}
	b.WriteString("</params></methodCall>\n")
	return b.Bytes(), nil
}

// parseResponse decodes a methodResponse: its single value, or a *Fault.
// Anything else — a malformed document, trailing elements, unknown types,
// nesting deeper than maxValueDepth — is an error that says what was wrong.
func parseResponse(r io.Reader) (any, error) {
	p := &responseParser{d: xml.NewDecoder(r)}
	p.d.CharsetReader = utf8Only
	v, err := p.response()
	if err != nil {
		return nil, err
	}
	return v, nil
}

// utf8Only accepts the declarations that mean UTF-8 (Python's xmlrpc
// declares none or utf-8); a peer in another charset is refused rather than
// misread.
func utf8Only(charset string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	}
	return nil, fmt.Errorf("charset %q: want utf-8", charset)
}

type responseParser struct {
	d     *xml.Decoder
	depth int
}

var errXMLRPC = errors.New("xml-rpc answer")

func (p *responseParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errXMLRPC, fmt.Sprintf(format, args...))
}

// token reads the next token; the end of the document there is an error
// naming where it came (where: "" or " in <value>").
func (p *responseParser) token(where string) (xml.Token, error) {
	tok, err := p.d.Token()
	if err == io.EOF {
		return nil, p.errorf("unexpected end of document%s", where)
	}
	if err != nil {
		return nil, p.errorf("%v", err)
	}
	return tok, nil
}

// next returns the next token that matters between elements: whitespace,
// comments and processing instructions are skipped; text or a directive
// (a DTD) there is an error.
func (p *responseParser) next() (xml.Token, error) {
	for {
		tok, err := p.token("")
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) == 0 {
				continue
			}
			return nil, p.errorf("unexpected text %q", clip(string(t)))
		case xml.Comment, xml.ProcInst:
			continue
		case xml.Directive:
			return nil, p.errorf("unexpected directive")
		case xml.StartElement:
			if t.Name.Space != "" {
				return nil, p.errorf("unexpected element <%s:%s>", t.Name.Space, t.Name.Local)
			}
			return t, nil
		case xml.EndElement:
			return t, nil
		}
	}
}

// expect reads the next element tag and refuses any but tag, written as
// "<name>" or "</name>".
func (p *responseParser) expect(tag string) error {
	tok, err := p.next()
	if err != nil {
		return err
	}
	if got := describe(tok); got != tag {
		return p.errorf("want %s, got %s", tag, got)
	}
	return nil
}

func (p *responseParser) response() (any, error) {
	if err := p.expect("<methodResponse>"); err != nil {
		return nil, err
	}
	tok, err := p.next()
	if err != nil {
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, p.errorf("want <params> or <fault>, got %s", describe(tok))
	}
	var (
		result any
		fault  *Fault
	)
	switch start.Name.Local {
	case "params":
		if err := p.expect("<param>"); err != nil {
			return nil, err
		}
		if result, err = p.value(); err != nil {
			return nil, err
		}
		if err := p.expect("</param>"); err != nil {
			return nil, err
		}
		if err := p.expect("</params>"); err != nil {
			return nil, err
		}
	case "fault":
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if fault, err = faultFrom(v); err != nil {
			return nil, p.errorf("%v", err)
		}
		if err := p.expect("</fault>"); err != nil {
			return nil, err
		}
	default:
		return nil, p.errorf("want <params> or <fault>, got <%s>", start.Name.Local)
	}
	if err := p.expect("</methodResponse>"); err != nil {
		return nil, err
	}
	// Nothing but whitespace and comments may follow.
	for {
		tok, err := p.d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, p.errorf("%v", err)
		}
		switch t := tok.(type) {
		case xml.Comment, xml.ProcInst:
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, p.errorf("text after </methodResponse>")
			}
		default:
			return nil, p.errorf("%s after </methodResponse>", describe(tok))
		}
	}
	if fault != nil {
		return nil, fault
	}
	return result, nil
}

func faultFrom(v any) (*Fault, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("fault: want a struct, got %s", typeName(v))
	}
	code, ok := m["faultCode"].(int64)
	if !ok {
		return nil, fmt.Errorf("fault: faultCode: want an int, got %s", typeName(m["faultCode"]))
	}
	s, ok := m["faultString"].(string)
	if !ok {
		return nil, fmt.Errorf("fault: faultString: want a string, got %s", typeName(m["faultString"]))
	}
	if code < -1<<31 || code > 1<<31-1 {
		return nil, fmt.Errorf("fault: faultCode %d out of range", code)
	}
	return &Fault{Code: int(code), String: s}, nil
}

// value parses <value>…</value>, the opening tag included.
func (p *responseParser) value() (any, error) {
	if err := p.expect("<value>"); err != nil {
		return nil, err
	}
	return p.valueBody()
}

// valueBody parses what follows <value>: untyped text (a string) or one
// typed element, then </value>.
func (p *responseParser) valueBody() (any, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxValueDepth {
		return nil, p.errorf("values nested deeper than %d", maxValueDepth)
	}
	var (
		text  strings.Builder
		typed any
		seen  bool
	)
	for {
		tok, err := p.token(" in <value>")
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			text.Write(t)
		case xml.Comment, xml.ProcInst:
		case xml.Directive:
			return nil, p.errorf("unexpected directive")
		case xml.StartElement:
			if seen {
				return nil, p.errorf("<value> holds more than one element")
			}
			if t.Name.Space != "" {
				return nil, p.errorf("unexpected element <%s:%s>", t.Name.Space, t.Name.Local)
			}
			if typed, err = p.typed(t.Name.Local); err != nil {
				return nil, err
			}
			seen = true
		case xml.EndElement:
			// The decoder guarantees this is </value>.
			if !seen {
				return text.String(), nil
			}
			if strings.TrimSpace(text.String()) != "" {
				return nil, p.errorf("<value> mixes text and an element")
			}
			return typed, nil
		}
	}
}

// text reads character data up to the end of the current element, which
// must hold no child element.
func (p *responseParser) text(name string) (string, error) {
	var b strings.Builder
	for {
		tok, err := p.token(" in <" + name + ">")
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.Comment, xml.ProcInst:
		case xml.EndElement:
			return b.String(), nil
		default:
			return "", p.errorf("<%s> must hold text only, got %s", name, describe(tok))
		}
	}
}

// typed parses the element <name> (already opened) up to its end tag.
func (p *responseParser) typed(name string) (any, error) {
	switch name {
	case "string":
		return p.text(name)
	case "int", "i4", "i8":
		s, err := p.text(name)
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, p.errorf("<%s>%s</%s>: not an integer", name, clip(s), name)
		}
		return n, nil
	case "boolean":
		s, err := p.text(name)
		if err != nil {
			return nil, err
		}
		switch strings.TrimSpace(s) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
		return nil, p.errorf("<boolean>%s</boolean>: want 0 or 1", clip(s))
	case "double":
		s, err := p.text(name)
		if err != nil {
			return nil, err
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, p.errorf("<double>%s</double>: not a number", clip(s))
		}
		return f, nil
	case "dateTime.iso8601":
		s, err := p.text(name)
		return strings.TrimSpace(s), err
	case "base64":
		s, err := p.text(name)
		if err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return nil, p.errorf("<base64>: %v", err)
		}
		return b, nil
	case "nil":
		s, err := p.text(name)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(s) != "" {
			return nil, p.errorf("<nil> must be empty")
		}
		return nil, nil
	case "array":
		return p.array()
	case "struct":
		return p.structure()
	}
	return nil, p.errorf("unknown value type <%s>", name)
}

func (p *responseParser) array() (any, error) {
	if err := p.expect("<data>"); err != nil {
		return nil, err
	}
	out := []any{}
	err := p.children("data", "value", func() error {
		v, err := p.valueBody()
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, p.expect("</array>")
}

func (p *responseParser) structure() (any, error) {
	out := map[string]any{}
	err := p.children("struct", "member", func() error {
		if err := p.expect("<name>"); err != nil {
			return err
		}
		name, err := p.text("name")
		if err != nil {
			return err
		}
		if _, dup := out[name]; dup {
			return p.errorf("<struct> has member %q twice", clip(name))
		}
		if out[name], err = p.value(); err != nil {
			return err
		}
		return p.expect("</member>")
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// children reads the elements inside parent up to its end tag, each of
// which must be a <child>; each reads what follows the <child> tag.
func (p *responseParser) children(parent, child string, each func() error) error {
	for {
		tok, err := p.next()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local != child {
				return p.errorf("<%s> holds <%s>, want <%s>", parent, t.Name.Local, child)
			}
			if err := each(); err != nil {
				return err
			}
		case xml.EndElement: // </parent>
			return nil
		}
	}
}

func describe(tok xml.Token) string {
	switch t := tok.(type) {
	case xml.StartElement:
		return "<" + t.Name.Local + ">"
	case xml.EndElement:
		return "</" + t.Name.Local + ">"
	case xml.CharData:
		return fmt.Sprintf("text %q", clip(string(t)))
	}
	return fmt.Sprintf("%T", tok)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case string:
		return "a string"
	case int64:
		return "an int"
	case bool:
		return "a boolean"
	case float64:
		return "a double"
	case []byte:
		return "base64"
	case []any:
		return "an array"
	case map[string]any:
		return "a struct"
	}
	return fmt.Sprintf("%T", v)
}

// clip shortens peer text quoted in an error.
func clip(s string) string {
	const n = 60
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
