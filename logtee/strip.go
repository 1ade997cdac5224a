package logtee

// Stripper removes terminal escape sequences and turns '\r' into a line
// break ("\r\n" stays one break), statefully across Write calls so that a
// sequence split between two reads is still removed. UTF-8 passes as is.
type Stripper struct {
	state  uint8
	pendCR bool
	strLen int
}

const (
	sText = iota
	sEsc
	sCSI
	sString
	sStringEsc
	sCharset
)

// Write appends the stripped form of p to dst.
func (s *Stripper) Write(dst, p []byte) []byte {
	for _, c := range p {
		switch s.state {
		case sText:
			if s.pendCR {
				s.pendCR = false
				if c != '\n' {
					dst = append(dst, '\n')
				}
			}
			switch {
			case c == '\r':
				s.pendCR = true
			case c == 0x1b:
				s.state = sEsc
			case c == '\n' || c == '\t' || c >= 0x20 && c != 0x7f:
				dst = append(dst, c)
			}
		case sEsc:
			switch c {
			case '[':
				s.state = sCSI
			case ']', 'P', '_', '^', 'X':
				s.state, s.strLen = sString, 0
			case '(', ')':
				s.state = sCharset
			default:
				s.state = sText
			}
		case sCSI:
			if c >= 0x40 && c <= 0x7e || c < 0x20 {
				s.state = sText
			}
		case sString:
			s.strLen++
			switch {
			case c == 0x07:
				s.state = sText
			case c == 0x1b:
				s.state = sStringEsc
			case s.strLen > 4096:
				s.state = sText
			}
		case sStringEsc:
			if c == '\\' {
				s.state = sText
			} else {
				s.state = sString
			}
		case sCharset:
			s.state = sText
		}
	}
	return dst
}

// Flush ends the stream: a trailing '\r' becomes its line break.
func (s *Stripper) Flush(dst []byte) []byte {
	if s.pendCR {
		s.pendCR = false
		dst = append(dst, '\n')
	}
	return dst
}
