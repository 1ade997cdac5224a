package logstream

import (
	"bytes"
	"strconv"
	"strings"
)

// terminal-to-html v3.17 parses 24-bit colour (ESC[38;2;R;G;Bm) but renders
// no class for it, panics on a fourth component (ESC[38;2;1;2;3;4m, or
// ESC[38;;2;…: index out of range), and prints the colon form
// (ESC[38:2:R:G:Bm) as text. So every SGR sequence is rebuilt before the
// library sees it, and colours travel through the one channel it renders
// faithfully: the 256-colour classes term-fgxN / term-bgxN. A palette
// lends indices to the colours a line (or a block-mode window) uses, and
// the rendered classes are mapped back: a 24-bit colour becomes
// term-fgt-RRGGBB / term-bgt-RRGGBB (lowercase hex), which the dashboard
// turns into an inline rgb() style, like the 256 colours; a real 256
// colour whose index was lent stays term-fgxN. Nothing but class names
// comes out, so the markup rule (spans with classes only) holds.

// palette is the index lending of one render unit (a plain line, or one
// block-mode screen).
type palette struct {
	fg, bg paletteSide
}

type paletteSide struct {
	class   map[uint8]string // index → the class it stands for, when not itself
	byClass map[string]uint8
	used    [4]uint64 // indices taken (bitset)
}

func (p *paletteSide) taken(i uint8) bool { return p.used[i>>6]&(1<<(i&63)) != 0 }
func (p *paletteSide) take(i uint8)       { p.used[i>>6] |= 1 << (i & 63) }

// index returns the palette index for class (its own index first, when
// it is a real 256 colour and still free), or false when all 256 are lent.
func (p *paletteSide) index(class string, own int) (uint8, bool) {
	if i, ok := p.byClass[class]; ok {
		return i, true
	}
	pick := -1
	if own >= 0 && !p.taken(uint8(own)) {
		pick = own
	} else {
		// Lend from the top: the greys of the 256 palette are the least
		// used by programs, so a real colour rarely needs moving.
		for i := 255; i >= 0; i-- {
			if !p.taken(uint8(i)) {
				pick = i
				break
			}
		}
	}
	if pick < 0 {
		return 0, false
	}
	if p.byClass == nil {
		p.byClass = map[string]uint8{}
	}
	p.take(uint8(pick))
	p.byClass[class] = uint8(pick)
	if class != "x"+strconv.Itoa(pick) {
		if p.class == nil {
			p.class = map[uint8]string{}
		}
		p.class[uint8(pick)] = class
	}
	return uint8(pick), true
}

func (p *palette) remaps() bool { return len(p.fg.class)+len(p.bg.class) > 0 }

// rewriteSGR returns b with every SGR sequence rebuilt from its numeric
// parameters (colours through the palette) and other CSI sequences that
// carry ':' dropped. b holds whole sequences (the filter completes them).
// When nothing needs rewriting it returns b itself.
func rewriteSGR(b []byte, pal *palette) []byte {
	if bytes.IndexByte(b, 0x1b) < 0 {
		return b
	}
	var out []byte
	changed := false
	last := 0
	for i := 0; i < len(b); i++ {
		if b[i] != 0x1b || i+1 >= len(b) || b[i+1] != '[' {
			continue
		}
		j := i + 2
		for j < len(b) && b[j] >= 0x20 && b[j] <= 0x3f {
			j++
		}
		if j >= len(b) || b[j] < 0x40 || b[j] > 0x7e {
			continue // not a complete CSI: the library prints or drops it
		}
		params := b[i+2 : j]
		final := b[j]
		var repl []byte
		switch {
		case final == 'm' && len(params) == 0:
			i = j
			continue
		case final == 'm':
			repl = rebuildSGR(params, pal)
			if bytes.Equal(repl, b[i:j+1]) {
				i = j
				continue
			}
		case bytes.IndexByte(params, ':') >= 0:
			repl = nil // drop: the library would print it as text
		default:
			i = j
			continue
		}
		out = append(out, b[last:i]...)
		out = append(out, repl...)
		changed = true
		last = j + 1
		i = j
	}
	if !changed {
		return b
	}
	return append(out, b[last:]...)
}

// rebuildSGR parses the parameters of one SGR sequence the way a terminal
// does and writes it back in the form the library handles: numbers it
// knows (0-255), colours as 38;5;N / 48;5;N with N from the palette.
func rebuildSGR(params []byte, pal *palette) []byte {
	out := []byte("\x1b[")
	n := 0
	put := func(s string) {
		if n > 0 {
			out = append(out, ';')
		}
		out = append(out, s...)
		n++
	}
	toks := strings.Split(string(params), ";")
	for k := 0; k < len(toks); k++ {
		tok := toks[k]
		var sub []string
		if strings.Contains(tok, ":") {
			sub = strings.Split(tok, ":")
			tok = sub[0]
		}
		v, err := strconv.ParseUint(tok, 10, 8)
		if err != nil {
			continue // the library skips what it cannot parse; so do we
		}
		if v != 38 && v != 48 {
			if sub == nil {
				put(strconv.FormatUint(v, 10))
			}
			continue
		}
		side, prefix, reset := &pal.fg, "38", "39"
		if v == 48 {
			side, prefix, reset = &pal.bg, "48", "49"
		}
		// The colour spec: the rest of the colon form, or the next
		// semicolon parameters.
		var spec []string
		if sub != nil {
			spec = sub[1:]
		} else {
			end := min(len(toks), k+5)
			spec = toks[k+1 : end]
		}
		class, own, used := colourClass(spec, sub != nil)
		if sub == nil {
			k += used
		}
		if class == "" {
			put(reset)
			continue
		}
		if idx, ok := side.index(class, own); ok {
			put(prefix)
			put("5")
			put(strconv.Itoa(int(idx)))
		} else {
			put(reset) // more colours than a palette holds: default colour
		}
	}
	if n == 0 {
		return []byte{} // nothing the library would act on
	}
	return append(out, 'm')
}

// colourClass reads the colour after 38/48: "5;N" (256 colours) or
// "2;R;G;B" (24-bit; the colon form may carry a colour-space id first:
// 2::R:G:B or 2:CS:R:G:B). It returns the class suffix ("x197",
// "t-ff0010"), the real 256-colour index (or -1), and how many
// parameters it consumed; an empty class for a malformed spec.
func colourClass(spec []string, colon bool) (class string, own int, used int) {
	if len(spec) == 0 {
		return "", -1, 0
	}
	num := func(s string) (int, bool) {
		v, err := strconv.ParseUint(s, 10, 8)
		return int(v), err == nil
	}
	switch spec[0] {
	case "5":
		if len(spec) < 2 {
			return "", -1, len(spec)
		}
		v, ok := num(spec[1])
		if !ok {
			return "", -1, 2
		}
		return "x" + strconv.Itoa(v), v, 2
	case "2":
		rgb := spec[1:]
		if colon && len(rgb) == 4 {
			rgb = rgb[1:] // colour-space id
		}
		if len(rgb) < 3 {
			return "", -1, len(spec)
		}
		var c [3]int
		for i := range c {
			v, ok := num(rgb[i])
			if !ok {
				return "", -1, 4
			}
			c[i] = v
		}
		const hex = "0123456789abcdef"
		b := []byte("t-")
		for _, v := range c {
			b = append(b, hex[v>>4], hex[v&15])
		}
		return string(b), -1, 4
	}
	return "", -1, 1
}

// apply maps the palette's lent indices back to their classes in rendered
// HTML: only inside class attributes, which hold nothing else.
func (p *palette) apply(html string) string {
	if !p.remaps() || !strings.Contains(html, `class="`) {
		return html
	}
	var sb strings.Builder
	rest := html
	for {
		i := strings.Index(rest, `<span class="`)
		if i < 0 {
			break
		}
		i += len(`<span class="`)
		j := strings.IndexByte(rest[i:], '"')
		if j < 0 {
			break
		}
		sb.WriteString(rest[:i])
		for k, cl := range strings.Fields(rest[i : i+j]) {
			if k > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(p.mapClass(cl))
		}
		rest = rest[i+j:]
	}
	sb.WriteString(rest)
	return sb.String()
}

func (p *palette) mapClass(cl string) string {
	var side *paletteSide
	var num, kind string
	switch {
	case strings.HasPrefix(cl, "term-fgx"):
		side, num, kind = &p.fg, cl[len("term-fgx"):], "term-fg"
	case strings.HasPrefix(cl, "term-bgx"):
		side, num, kind = &p.bg, cl[len("term-bgx"):], "term-bg"
	default:
		return cl
	}
	v, err := strconv.ParseUint(num, 10, 8)
	if err != nil {
		return cl
	}
	if c, ok := side.class[uint8(v)]; ok {
		return kind + c
	}
	return cl
}
