package portallinks

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// skipped ends the warning of every entry (or file) left out, so that the
// page and the tests can tell them from warnings about ignored keys.
const skipped = "; entry skipped"

// parseFile reads a links file: a YAML list of entries (see
// docs/processes.md). It never fails: what cannot be used is left out and
// reported in warnings, each naming source, the line and the entry.
func parseFile(data []byte, source string) (cards []Card, warnings []string) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []string{fmt.Sprintf("%s: not valid YAML (%s); file skipped", source, oneLine(err.Error()))}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.SequenceNode {
		return nil, []string{fmt.Sprintf("%s:%d: want a list of entries (- label: …, url: …); file skipped", source, root.Line)}
	}
	for i, item := range root.Content {
		if len(cards) == maxCards {
			warnings = append(warnings, fmt.Sprintf("%s:%d: more than %d entries; the rest skipped", source, item.Line, maxCards))
			break
		}
		card, warns, err := parseEntry(item)
		where := fmt.Sprintf("%s:%d: entry %d", source, item.Line, i+1)
		if card.Label != "" {
			where += fmt.Sprintf(" (%q)", clip(card.Label))
		}
		for _, w := range warns {
			warnings = append(warnings, where+": "+w)
		}
		if err != nil {
			warnings = append(warnings, where+": "+err.Error()+skipped)
			continue
		}
		cards = append(cards, card)
	}
	return cards, warnings
}

// parseEntry reads one mapping. warns are about ignored parts; err means
// the entry is unusable. The card's label is set as soon as it is known,
// so that messages can name the entry.
func parseEntry(n *yaml.Node) (card Card, warns []string, err error) {
	card = Card{Source: SourceFile, Icon: "link", ButtonText: "Open", Position: "after"}
	if n.Kind != yaml.MappingNode {
		return card, nil, errors.New("want a mapping with label and url")
	}
	var (
		rawURL string
		seen   = map[string]bool{}
		errs   []string
	)
	// The label first, so every other message can name the entry.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Value == "label" && v.Kind == yaml.ScalarNode {
			card.Label = strings.TrimSpace(v.Value)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Sprintf("line %d: a key that is not a name", k.Line))
			continue
		}
		if seen[key] {
			errs = append(errs, fmt.Sprintf("%s: given twice", key))
			continue
		}
		seen[key] = true
		if key == "links" {
			links, lw, lerr := parseLinks(v)
			warns = append(warns, lw...)
			if lerr != nil {
				errs = append(errs, "links: "+lerr.Error())
			}
			card.Links = links
			continue
		}
		text, ok := scalar(v)
		switch key {
		case "label", "url", "description", "icon", "button_text", "position":
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: want text", key))
				continue
			}
		default:
			warns = append(warns, fmt.Sprintf("unknown key %q ignored", clip(key)))
			continue
		}
		var ferr error
		switch key {
		case "label":
			card.Label, ferr = checkText(text, maxLabel, true)
		case "url":
			rawURL = strings.TrimSpace(text)
			ferr = checkURL(rawURL)
		case "description":
			card.Description, ferr = checkDescription(text)
		case "icon":
			icon := strings.ToLower(strings.TrimSpace(text))
			if !validIcon(icon) {
				ferr = fmt.Errorf("%q: want one of %s", clip(text), strings.Join(Icons, ", "))
			}
			card.Icon = icon
		case "button_text":
			card.ButtonText, ferr = checkText(text, maxButtonText, true)
		case "position":
			card.Position = strings.ToLower(strings.TrimSpace(text))
			if card.Position != "before" && card.Position != "after" {
				ferr = fmt.Errorf("%q: want before or after", clip(text))
			}
		}
		if ferr != nil {
			errs = append(errs, key+": "+ferr.Error())
		}
	}
	if !seen["label"] {
		errs = append(errs, "label: missing")
	}
	if !seen["url"] {
		errs = append(errs, "url: missing")
	}
	if len(errs) > 0 {
		return card, warns, errors.New(strings.Join(errs, "; "))
	}
	card.URL = rawURL
	return card, warns, nil
}

// parseLinks reads the secondary links. A bad link is dropped with a
// warning; links that is not a list is an error.
func parseLinks(n *yaml.Node) ([]Link, []string, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, nil, errors.New("want a list of {label, url}")
	}
	var (
		links []Link
		warns []string
	)
	for i, item := range n.Content {
		if len(links) == maxLinks {
			warns = append(warns, fmt.Sprintf("links: more than %d; the rest dropped", maxLinks))
			break
		}
		l, err := parseLink(item)
		if err != nil {
			warns = append(warns, fmt.Sprintf("links[%d] (line %d): %v; link dropped", i+1, item.Line, err))
			continue
		}
		links = append(links, l)
	}
	return links, warns, nil
}

func parseLink(n *yaml.Node) (Link, error) {
	if n.Kind != yaml.MappingNode {
		return Link{}, errors.New("want a mapping with label and url")
	}
	var (
		l        Link
		seen     = map[string]bool{}
		errs     []string
		hasLabel bool
		hasURL   bool
	)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			errs = append(errs, k.Value+": given twice")
			continue
		}
		seen[k.Value] = true
		text, ok := scalar(v)
		var err error
		switch k.Value {
		case "label":
			hasLabel = true
			if !ok {
				err = errors.New("want text")
				break
			}
			l.Label, err = checkText(text, maxLabel, true)
		case "url":
			hasURL = true
			if !ok {
				err = errors.New("want text")
				break
			}
			l.URL = strings.TrimSpace(text)
			err = checkURL(l.URL)
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			errs = append(errs, clip(k.Value)+": "+err.Error())
		}
	}
	if !hasLabel {
		errs = append(errs, "label: missing")
	}
	if !hasURL {
		errs = append(errs, "url: missing")
	}
	if len(errs) > 0 {
		return Link{}, errors.New(strings.Join(errs, "; "))
	}
	return l, nil
}

// scalar returns a scalar's text. A null is not text; numbers and
// booleans are, as written ("label: 2024").
func scalar(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

// parseInline reads "Label|URL|Description,…" (PORTAL_LINKS): entries
// separated by commas, fields by "|"; the description keeps any further
// "|". Empty entries are ignored. Invalid entries are skipped with a
// warning naming their position.
func parseInline(s string) (cards []Card, warnings []string) {
	n := 0
	for _, raw := range strings.Split(s, ",") {
		item := strings.TrimSpace(raw)
		if item == "" {
			continue
		}
		n++
		if len(cards) == maxCards {
			warnings = append(warnings, fmt.Sprintf("PORTAL_LINKS: more than %d entries; the rest skipped", maxCards))
			break
		}
		card, err := parseInlineItem(item)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("PORTAL_LINKS: entry %d (%q): %v%s", n, clip(item), err, skipped))
			continue
		}
		cards = append(cards, card)
	}
	return cards, warnings
}

func parseInlineItem(item string) (Card, error) {
	fields := strings.SplitN(item, "|", 3)
	if len(fields) < 2 {
		return Card{}, errors.New("want Label|URL or Label|URL|Description")
	}
	card := Card{Source: SourceEnv, Icon: "link", ButtonText: "Open", Position: "after"}
	var (
		errs []string
		err  error
	)
	if card.Label, err = checkText(fields[0], maxLabel, true); err != nil {
		errs = append(errs, "label: "+err.Error())
	}
	card.URL = strings.TrimSpace(fields[1])
	if err := checkURL(card.URL); err != nil {
		errs = append(errs, "url: "+err.Error())
	}
	if len(fields) == 3 {
		if card.Description, err = checkDescription(fields[2]); err != nil {
			errs = append(errs, "description: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return Card{}, errors.New(strings.Join(errs, "; "))
	}
	return card, nil
}

func oneLine(s string) string {
	return clip(strings.Join(strings.Fields(s), " "))
}
