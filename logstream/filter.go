package logstream

import (
	"unicode/utf8"
)

// DefaultMaxLineBytes caps one logical line (bytes between two '\n'). A
// model download that prints a 2 MB JSON blob on one line must not make
// every client render it; the rest of such a line is dropped and a marker
// says so.
const DefaultMaxLineBytes = 64 << 10

// TruncatedMarker ends a line cut at the line cap.
const TruncatedMarker = " … [line truncated]"

// Longest escape sequences we pass or skip. Real CSI sequences are a few
// bytes; an unterminated one must not swallow the log.
const (
	maxCSIBytes    = 64
	maxStringBytes = 4096
)

type filterState uint8

const (
	stNormal    filterState = iota
	stEsc                   // after ESC
	stCSI                   // inside ESC [ … final
	stString                // inside OSC/DCS/APC/PM/SOS, skipped
	stStringEsc             // ESC inside a skipped string (maybe ST)
	stCharset               // ESC ( or ESC ): one designator byte follows
)

// filter turns raw log bytes into the subset of terminal output that the
// renderer understands and that is safe to show: valid UTF-8 (each invalid
// byte becomes U+FFFD), text, '\n' '\r' '\b' '\t', CSI sequences and the
// ESC M / ESC 7 / ESC 8 cursor commands. It drops other C0 controls and
// every string command (OSC, DCS, APC, PM, SOS): terminal-to-html would
// turn OSC 8/1338 into <a href> and <img src>, and a log line must not make
// the dashboard fetch a URL (a relative one would carry the user's cookie).
//
// It is stateful across Write calls: escape sequences and UTF-8 characters
// split between two reads are completed on the next one.
type filter struct {
	maxLine   int
	state     filterState
	seq       []byte // pending escape sequence (stEsc, stCSI)
	strLen    int    // bytes skipped in the current string command
	pend      []byte // incomplete UTF-8 character held from the last call
	lineBytes int    // bytes of the current line passed so far
	cut       bool   // the current line hit the cap; drop until '\n'
}

func newFilter(maxLine int) *filter {
	if maxLine <= 0 {
		maxLine = DefaultMaxLineBytes
	}
	return &filter{maxLine: maxLine}
}

// filtered is what one Write produced: the sanitised bytes and where, in
// them, the first and last cursor-up command start (-1 when none). Cursor-up
// is what turns a plain log into a redrawn block (tqdm's nested bars).
type filtered struct {
	out             []byte
	firstUp, lastUp int
}

// Write filters p, appending to dst (which may be nil) and returning it.
func (f *filter) Write(dst []byte, p []byte) filtered {
	r := filtered{out: dst, firstUp: -1, lastUp: -1}
	if len(f.pend) > 0 {
		// Complete the character split across reads.
		joined := make([]byte, 0, len(f.pend)+len(p))
		joined = append(append(joined, f.pend...), p...)
		f.pend = f.pend[:0]
		p = joined
	}
	for i := 0; i < len(p); {
		c := p[i]
		switch f.state {
		case stNormal:
			switch {
			case c == '\n':
				r.out = append(r.out, '\n')
				f.lineBytes, f.cut = 0, false
				i++
			case c == 0x1b:
				f.state = stEsc
				f.seq = append(f.seq[:0], c)
				i++
			case c == '\r':
				// A carriage return rewrites the line from column 0: the
				// visible width starts again, so a progress bar that redraws
				// itself for an hour never hits the cap.
				if !f.cut {
					r.out = append(r.out, '\r')
					f.lineBytes = 0
				}
				i++
			case c == '\b' || c == '\t':
				f.text(&r, p[i:i+1])
				i++
			case c < 0x20 || c == 0x7f:
				i++ // other controls (NUL, BEL, …) would reach the HTML
			case c < utf8.RuneSelf:
				f.text(&r, p[i:i+1])
				i++
			default:
				if !utf8.FullRune(p[i:]) {
					f.pend = append(f.pend, p[i:]...)
					return r
				}
				ru, n := utf8.DecodeRune(p[i:])
				if ru == utf8.RuneError && n == 1 {
					f.text(&r, []byte("\uFFFD"))
				} else {
					f.text(&r, p[i:i+n])
				}
				i += n
			}
		case stEsc:
			i++
			switch c {
			case '[':
				f.seq = append(f.seq, c)
				f.state = stCSI
			case ']', 'P', '_', '^', 'X':
				f.state, f.strLen = stString, 0
			case '(', ')':
				f.state = stCharset
			case 'M', '7', '8':
				// Reverse index and cursor restore move the cursor up.
				f.seq = append(f.seq, c)
				if c != '7' {
					f.markUp(&r)
				}
				f.emitSeq(&r)
			default:
				// Unknown two-byte escape (ESC =, ESC >, …): nothing to show.
				f.state = stNormal
				if c == '\n' {
					i-- // let the newline count
				}
			}
		case stCSI:
			i++
			switch {
			case c >= 0x40 && c <= 0x7e: // final byte
				f.seq = append(f.seq, c)
				if c == 'A' || c == 'F' {
					f.markUp(&r)
				}
				f.emitSeq(&r)
			case c >= 0x20 && c <= 0x3f && len(f.seq) < maxCSIBytes:
				f.seq = append(f.seq, c)
			default:
				// Malformed or runaway: drop it, keep the byte if it is text.
				f.state = stNormal
				if c == '\n' || c >= 0x20 {
					i--
				}
			}
		case stString:
			i++
			f.strLen++
			switch {
			case c == 0x07:
				f.state = stNormal
			case c == 0x1b:
				f.state = stStringEsc
			case f.strLen > maxStringBytes:
				f.state = stNormal // unterminated: stop skipping
			}
		case stStringEsc:
			i++
			if c == '\\' {
				f.state = stNormal
			} else {
				f.state = stString
			}
		case stCharset:
			i++
			f.state = stNormal
		}
	}
	return r
}

func (f *filter) markUp(r *filtered) {
	at := len(r.out)
	if r.firstUp < 0 {
		r.firstUp = at
	}
	r.lastUp = at
}

// emitSeq passes a complete escape sequence through, unless the line is
// already cut (then nothing more of it is shown).
func (f *filter) emitSeq(r *filtered) {
	f.state = stNormal
	if !f.cut {
		// Sequences count towards the cap too: a line of endless colour
		// codes is as heavy to render as one of text.
		f.text(r, f.seq)
	}
	f.seq = f.seq[:0]
}

// text passes visible bytes, enforcing the line cap.
func (f *filter) text(r *filtered, b []byte) {
	if f.cut {
		return
	}
	if f.lineBytes+len(b) > f.maxLine {
		r.out = append(r.out, TruncatedMarker...)
		f.cut = true
		return
	}
	f.lineBytes += len(b)
	r.out = append(r.out, b...)
}

// reset forgets any partial state (file truncated or replaced).
func (f *filter) reset() {
	*f = filter{maxLine: f.maxLine, seq: f.seq[:0], pend: f.pend[:0]}
}
