package logstream

import (
	"bytes"
	"slices"
	"strings"

	terminal "github.com/buildkite/terminal-to-html/v3"
)

// DefaultBlockLines is the height of the emulated terminal window once a
// file moves the cursor up (nested progress bars): that many last lines stay
// "live" and may still be redrawn.
const DefaultBlockLines = 24

// renderer turns one file's byte stream into HTML lines. It works in two
// modes, because a log is nearly always plain and only sometimes a terminal:
//
//   - plain: a line is final at its '\n' and is rendered on its own. Only
//     the unfinished last line is live ('\r' progress bars, ESC[K).
//   - block: after a cursor-up (tqdm's nested bars, ESC M, ESC 8) the last
//     blockLines lines form a terminal window kept by terminal-to-html; a
//     line is final once it scrolls out of that window. The renderer returns
//     to plain mode after 2×blockLines newlines without a cursor-up.
//
// Entering block mode "reopens" the last few final lines (they may be the
// bars being redrawn), which the client drops and receives again as the
// live block; this is why plain mode keeps their sanitised bytes.
type renderer struct {
	filt       *filter
	blockLines int
	maxLine    int

	screen   *terminal.Screen // block mode only
	pal      *palette         // block mode: the screen's colour lending
	scrolled []string         // lines scrolled out during one block write
	nlSince  int              // newlines since the last cursor-up (block mode)

	partial []byte   // plain mode: sanitised bytes of the unfinished line
	recent  [][]byte // plain mode: sanitised bytes of the last final lines
	shown   []string // the live block as the client has it
}

// change is one step of a render result, applied in order: either lines
// that became final (the live block is cleared), or a reopen of the last
// n final lines (they are dropped; the live block is cleared).
type change struct {
	lines  []string
	reopen int
}

type renderResult struct {
	changes []change
	// live is the live block after the changes; liveChanged says whether
	// the client must be told (it differs from what the client shows).
	live        []string
	liveChanged bool
}

func newRenderer(blockLines, maxLine int) *renderer {
	if blockLines < 2 {
		blockLines = DefaultBlockLines
	}
	if maxLine <= 0 {
		maxLine = DefaultMaxLineBytes
	}
	return &renderer{filt: newFilter(maxLine), blockLines: blockLines, maxLine: maxLine}
}

// Write renders the next bytes of the file.
func (r *renderer) Write(p []byte) renderResult {
	// The filtered bytes live only during this call (everything kept is
	// copied), so their buffer goes back to a pool shared by all files:
	// 256 quiet files do not each hold one.
	bp := chunkPool.Get().(*[]byte)
	f := r.filt.Write((*bp)[:0], p)
	defer func() {
		if cap(f.out) <= 2*readChunk {
			*bp = f.out[:0]
			chunkPool.Put(bp)
		}
	}()
	var res renderResult
	out := f.out
	if r.screen == nil {
		if f.firstUp < 0 {
			r.plain(&res, out)
		} else {
			r.plain(&res, out[:f.firstUp])
			r.enterBlock(&res)
			r.blockWrite(&res, out[f.firstUp:], f.lastUp-f.firstUp)
		}
	} else {
		r.blockWrite(&res, out, f.lastUp)
	}
	r.finish(&res)
	return res
}

// Finish makes whatever is pending final: the unfinished line in plain
// mode, the window in block mode (which ends). A tailer that skips part of
// a file calls it, so that nothing half-drawn waits for bytes that will
// never be read.
func (r *renderer) Finish() renderResult {
	var res renderResult
	if r.screen != nil {
		if w := r.window(); len(w) > 0 {
			res.changes = append(res.changes, change{lines: w})
		}
		r.screen, r.nlSince = nil, 0
	} else if len(r.partial) > 0 {
		res.changes = append(res.changes, change{lines: []string{renderLine(r.partial)}})
		r.partial = r.partial[:0]
	}
	r.finish(&res)
	return res
}

// Live is the live block as it stands (for a client joining now).
func (r *renderer) Live() []string { return r.shown }

// Reset forgets everything (the file was truncated or replaced).
func (r *renderer) Reset() {
	r.filt.reset()
	r.screen = nil
	r.partial = r.partial[:0]
	r.recent = nil
	r.shown = nil
	r.nlSince = 0
}

func (r *renderer) plain(res *renderResult, b []byte) {
	var final []string
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		line := b[:i]
		if len(r.partial) > 0 {
			line = append(r.partial, line...)
		}
		final = append(final, renderLine(line))
		r.remember(line)
		r.partial = r.partial[:0]
		b = b[i+1:]
	}
	if len(final) > 0 {
		res.changes = append(res.changes, change{lines: final})
	}
	r.partial = append(r.partial, b...)
	if len(r.partial) > 2*r.maxLine {
		// Only '\r' lets a line grow past the cap (each redraw restarts the
		// visible width); what precedes the last '\r' is overwritten.
		if i := bytes.LastIndexByte(r.partial, '\r'); i > 0 {
			r.partial = append(r.partial[:0], r.partial[i:]...)
		}
	}
}

// remember keeps a final line's bytes so that entering block mode can
// reopen it; only the last blockLines-1 are kept.
func (r *renderer) remember(line []byte) {
	keep := r.blockLines - 1
	if len(r.recent) >= keep {
		old := r.recent[0]
		r.recent = append(r.recent[:0], r.recent[1:]...)
		r.recent = append(r.recent, append(old[:0], line...))
		return
	}
	r.recent = append(r.recent, bytes.Clone(line))
}

func (r *renderer) enterBlock(res *renderResult) {
	s, err := terminal.NewScreen(terminal.WithSize(160, r.blockLines), terminal.WithMaxSize(0, r.blockLines))
	if err != nil {
		// Only bad sizes fail, and ours are constants checked in newRenderer.
		panic(err)
	}
	s.Timestamps = false
	s.ScrollOutFunc = func(html string) { r.scrolled = append(r.scrolled, r.pal.apply(strings.TrimSuffix(html, "\n"))) }
	r.screen = s
	r.pal = &palette{}
	if len(r.recent) > 0 || len(r.partial) > 0 {
		res.changes = append(res.changes, change{reopen: len(r.recent)})
		for _, l := range r.recent {
			r.screenWrite(l)
			r.screenWrite([]byte{'\n'})
		}
		r.screenWrite(r.partial)
	}
	r.recent = nil
	r.partial = r.partial[:0]
	r.nlSince = 0
}

// screenWrite feeds the block-mode screen, colours through its palette.
func (r *renderer) screenWrite(b []byte) { _, _ = r.screen.Write(rewriteSGR(b, r.pal)) }

func (r *renderer) blockWrite(res *renderResult, b []byte, lastUp int) {
	r.screenWrite(b)
	if lastUp >= 0 {
		r.nlSince = bytes.Count(b[lastUp:], []byte{'\n'})
	} else {
		r.nlSince += bytes.Count(b, []byte{'\n'})
	}
	final := r.scrolled
	r.scrolled = nil
	if r.nlSince >= 2*r.blockLines && len(b) > 0 && b[len(b)-1] == '\n' {
		// The cursor sits on a fresh line below everything: the window is
		// final, and the file is plain again.
		final = append(final, r.window()...)
		r.screen = nil
		r.nlSince = 0
	}
	if len(final) > 0 {
		res.changes = append(res.changes, change{lines: final})
	}
}

func (r *renderer) window() []string {
	h := r.screen.AsHTMLWithTimestamps(false)
	if h == "" {
		return nil
	}
	return strings.Split(r.pal.apply(h), "\n")
}

func (r *renderer) finish(res *renderResult) {
	var live []string
	if r.screen != nil {
		live = r.window()
	} else if len(r.partial) > 0 {
		live = []string{renderLine(r.partial)}
	}
	client := r.shown
	if len(res.changes) > 0 {
		client = nil // every change clears the client's live block
	}
	res.live = live
	res.liveChanged = !slices.Equal(client, live)
	r.shown = live
}

// renderLine renders one line. Lines without control characters (nearly
// all) skip the terminal emulator: escaping them is 10× cheaper and gives
// the same HTML (FuzzRenderLine checks it).
func renderLine(b []byte) string {
	var out string
	if !bytes.ContainsAny(b, "\x1b\r\b") {
		out = escapeHTML(b)
	} else {
		out = renderEmulated(b)
	}
	if out == "" {
		// As terminal-to-html renders a blank line: the line keeps its height.
		out = "&nbsp;"
	}
	return out
}

// renderEmulated renders through terminal-to-html ('\r', ESC[K, SGR, …),
// colours through a palette of the line's own (truecolor.go).
func renderEmulated(b []byte) string {
	var pal palette
	return pal.apply(terminal.Render(rewriteSGR(b, &pal)))
}

// escapeHTML escapes like terminal-to-html does, so both paths agree.
func escapeHTML(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/8)
	for _, c := range string(b) {
		switch c {
		case '&':
			sb.WriteString("&amp;")
		case '\'':
			sb.WriteString("&#39;")
		case '<':
			sb.WriteString("&lt;")
		case '>':
			sb.WriteString("&gt;")
		case '"':
			sb.WriteString("&quot;")
		case '/':
			sb.WriteString("&#47;")
		default:
			sb.WriteRune(c)
		}
	}
	// terminal-to-html drops trailing blanks; so do we.
	return strings.TrimRight(sb.String(), " \t")
}
