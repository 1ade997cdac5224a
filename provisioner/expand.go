package provisioner

import (
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// envExpr matches ${…} up to the first '}', as the reference's pattern.
var envExpr = regexp.MustCompile(`\$\{([^}]+)\}`)

// Expand replaces each ${VAR}, ${VAR:-default} and ${VAR:=default} in s,
// with the reference's rules, which are not the shell's:
//   - ${VAR} is VAR's value, or "" when unset;
//   - ${VAR:-d} and ${VAR:=d} are VAR's value when VAR is set (even to
//     ""), else d; nothing is assigned;
//   - ":-" is looked for first anywhere in the expression, then ":=";
//   - the expression ends at the first '}', so a default cannot hold one
//     (${A:-${B}} leaves a stray '}');
//   - $VAR without braces is left alone, for the shell to see.
func Expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return envExpr.ReplaceAllStringFunc(s, func(m string) string {
		expr := m[2 : len(m)-1]
		for _, sep := range []string{":-", ":="} {
			if name, def, ok := strings.Cut(expr, sep); ok {
				if v, set := lookup(name); set {
					return v
				}
				return def
			}
		}
		v, _ := lookup(expr)
		return v
	})
}

// expandNode expands every string value under n (never a mapping's keys),
// as the reference expands its loaded YAML before reading it.
func expandNode(n *yaml.Node, lookup func(string) (string, bool)) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			expandNode(c, lookup)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			expandNode(n.Content[i], lookup)
		}
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Tag == "" {
			n.Value = Expand(n.Value, lookup)
		}
	}
}
