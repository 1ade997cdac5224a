// Package promcheck checks that the queries of a Grafana dashboard find
// series in a Prometheus text exposition: every vector selector of every
// panel query and template variable must match at least one series. It
// reads enough PromQL to find the selectors (metric names and label
// matchers), not to evaluate the queries; functions, operators, ranges
// and grouping clauses are skipped.
package promcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Matcher is one label matcher of a selector. Any is true when the value
// held a Grafana variable ($instance, ${gpu}, [[x]]): a dashboard user may
// pick any value, so it matches every value of the label, present or not.
type Matcher struct {
	Label, Op, Value string
	Any              bool
}

// Selector is one vector selector: a metric name and its matchers.
type Selector struct {
	Metric   string
	Matchers []Matcher
	// Need lists labels the series must carry (label_values(m, label)).
	Need []string
}

func (s Selector) String() string {
	var b strings.Builder
	b.WriteString(s.Metric)
	if len(s.Matchers) > 0 {
		b.WriteByte('{')
		for i, m := range s.Matchers {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s%s%q", m.Label, m.Op, m.Value)
		}
		b.WriteByte('}')
	}
	if len(s.Need) > 0 {
		fmt.Fprintf(&b, " with label %s", strings.Join(s.Need, ","))
	}
	return b.String()
}

// keywords are PromQL words that are not metric names.
var keywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true,
	// aggregation operators, which may be followed by "by (…)" before "(":
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "group": true, "stddev": true,
	"stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true,
	"limitk": true, "limit_ratio": true,
}

var grafanaVar = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]`)

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// Selectors returns the vector selectors of one query. A Grafana
// label_values(metric, label) query is one selector needing that label;
// label_values(label) alone and other template functions give none.
func Selectors(q string) ([]Selector, error) {
	q = strings.TrimSpace(q)
	if rest, ok := strings.CutPrefix(q, "label_values("); ok {
		inner, ok := strings.CutSuffix(strings.TrimSpace(rest), ")")
		if !ok {
			return nil, fmt.Errorf("label_values without closing parenthesis: %q", q)
		}
		i := strings.LastIndexByte(inner, ',')
		if i < 0 {
			return nil, nil // label_values(label): any series
		}
		sels, err := Selectors(inner[:i])
		if err != nil || len(sels) != 1 {
			return nil, fmt.Errorf("label_values(%s): want one selector: %v", inner, err)
		}
		sels[0].Need = []string{strings.TrimSpace(inner[i+1:])}
		return sels, nil
	}
	var out []Selector
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(q, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '[':
			end := strings.IndexByte(q[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [ at %d in %q", i, q)
			}
			i += end + 1
		case c == '{':
			ms, end, err := matchers(q, i)
			if err != nil {
				return nil, err
			}
			sel := Selector{}
			for _, m := range ms {
				if m.Label == "__name__" && m.Op == "=" {
					sel.Metric = m.Value
					continue
				}
				sel.Matchers = append(sel.Matchers, m)
			}
			out = append(out, sel)
			i = end
		case isIdentStart(c):
			j := i
			for j < len(q) && isIdent(q[j]) {
				j++
			}
			word := q[i:j]
			k := j
			for k < len(q) && q[k] == ' ' {
				k++
			}
			switch {
			case keywords[strings.ToLower(word)]:
				if lw := strings.ToLower(word); (lw == "by" || lw == "without" || lw == "on" || lw == "ignoring" || lw == "group_left" || lw == "group_right") && k < len(q) && q[k] == '(' {
					end := strings.IndexByte(q[k:], ')')
					if end < 0 {
						return nil, fmt.Errorf("unclosed ( after %s in %q", word, q)
					}
					j = k + end + 1
				}
			case k < len(q) && q[k] == '(':
				// a function call: its arguments are scanned in turn
			case k < len(q) && q[k] == '{':
				ms, end, err := matchers(q, k)
				if err != nil {
					return nil, err
				}
				out = append(out, Selector{Metric: word, Matchers: ms})
				j = end
			default:
				out = append(out, Selector{Metric: word})
			}
			i = j
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(q) && (isIdent(q[j]) || q[j] == '.') {
				j++ // numbers, 1e6, 0x1f, durations after offset
			}
			i = j
		default:
			i++
		}
	}
	return out, nil
}

func skipString(q string, i int) (int, error) {
	quote := q[i]
	for j := i + 1; j < len(q); j++ {
		if q[j] == '\\' && quote != '`' {
			j++
			continue
		}
		if q[j] == quote {
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %d in %q", i, q)
}

// matchers parses {a="b", c=~"d"} starting at q[i] == '{'.
func matchers(q string, i int) ([]Matcher, int, error) {
	var out []Matcher
	i++
	for {
		for i < len(q) && (q[i] == ' ' || q[i] == ',') {
			i++
		}
		if i >= len(q) {
			return nil, 0, fmt.Errorf("unclosed { in %q", q)
		}
		if q[i] == '}' {
			return out, i + 1, nil
		}
		j := i
		for j < len(q) && isIdent(q[j]) {
			j++
		}
		if j == i {
			return nil, 0, fmt.Errorf("label name expected at %d in %q", i, q)
		}
		label := q[i:j]
		for j < len(q) && q[j] == ' ' {
			j++
		}
		op := ""
		for _, o := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(q[j:], o) {
				op = o
				break
			}
		}
		if op == "" {
			return nil, 0, fmt.Errorf("matcher operator expected after %s in %q", label, q)
		}
		j += len(op)
		for j < len(q) && q[j] == ' ' {
			j++
		}
		if j >= len(q) || (q[j] != '"' && q[j] != '\'' && q[j] != '`') {
			return nil, 0, fmt.Errorf("quoted value expected after %s%s in %q", label, op, q)
		}
		end, err := skipString(q, j)
		if err != nil {
			return nil, 0, err
		}
		raw := q[j+1 : end-1]
		val := strings.ReplaceAll(raw, `\\`, `\`)
		out = append(out, Matcher{Label: label, Op: op, Value: val, Any: grafanaVar.MatchString(raw)})
		i = end
	}
}

// Series is one sample's labels, __name__ included.
type Series map[string]string

// ParseExposition reads a Prometheus text exposition into its series.
// extra labels (what the scrape adds: instance, job, file_sd labels) are
// added to every series.
func ParseExposition(r io.Reader, extra map[string]string) ([]Series, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	var out []Series
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			s := Series{"__name__": name}
			for k, v := range extra {
				s[k] = v
			}
			for _, lp := range m.GetLabel() {
				s[lp.GetName()] = lp.GetValue()
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// Find reports whether a series matches sel.
func Find(series []Series, sel Selector) (bool, error) {
	for _, s := range series {
		ok, err := matches(s, sel)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func matches(s Series, sel Selector) (bool, error) {
	if sel.Metric != "" && s["__name__"] != sel.Metric {
		return false, nil
	}
	for _, l := range sel.Need {
		if s[l] == "" {
			return false, nil
		}
	}
	for _, m := range sel.Matchers {
		if m.Any {
			continue
		}
		v := s[m.Label]
		switch m.Op {
		case "=":
			if v != m.Value {
				return false, nil
			}
		case "!=":
			if v == m.Value {
				return false, nil
			}
		case "=~", "!~":
			re, err := regexp.Compile("^(?:" + m.Value + ")$")
			if err != nil {
				return false, fmt.Errorf("matcher %s%s%q: %w", m.Label, m.Op, m.Value, err)
			}
			if re.MatchString(v) != (m.Op == "=~") {
				return false, nil
			}
		}
	}
	return true, nil
}

// Queries returns every query of a Grafana dashboard: each "expr" of a
// panel target and each template variable's query, in a stable order.
func Queries(dashboard []byte) ([]string, error) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(dashboard))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	seen := map[string]bool{}
	var walk func(v any, inTemplating bool)
	walk = func(v any, inTemplating bool) {
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				switch {
				case k == "expr":
					if s, ok := c.(string); ok && s != "" {
						seen[s] = true
					}
				case inTemplating && (k == "query" || k == "definition"):
					if s, ok := c.(string); ok && strings.Contains(s, "(") {
						seen[s] = true
					}
					walk(c, inTemplating)
				default:
					walk(c, inTemplating || k == "templating")
				}
			}
		case []any:
			for _, c := range t {
				walk(c, inTemplating)
			}
		}
	}
	walk(doc, false)
	out := make([]string, 0, len(seen))
	for q := range seen {
		out = append(out, q)
	}
	sort.Strings(out)
	return out, nil
}

// Missing checks every query of a dashboard against series and returns
// one line per selector that finds nothing ("query: selector").
func Missing(dashboard []byte, series []Series) ([]string, int, error) {
	qs, err := Queries(dashboard)
	if err != nil {
		return nil, 0, err
	}
	var missing []string
	for _, q := range qs {
		sels, err := Selectors(q)
		if err != nil {
			return nil, len(qs), err
		}
		for _, sel := range sels {
			ok, err := Find(series, sel)
			if err != nil {
				return nil, len(qs), fmt.Errorf("query %q: %w", q, err)
			}
			if !ok {
				missing = append(missing, q+": "+sel.String())
			}
		}
	}
	return missing, len(qs), nil
}
