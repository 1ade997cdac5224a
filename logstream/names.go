package logstream

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadName is wrapped by every file-name rejection.
var ErrBadName = errors.New("invalid log file name")

// ValidateName accepts a bare file name ending in ".log": no directory
// part, no "..", no NUL or other control character. It does not check that
// the file exists (the Service does, inside its directory only).
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case len(name) > 255:
		return fmt.Errorf("%w: longer than 255 bytes", ErrBadName)
	case strings.ContainsAny(name, "/\\"):
		return fmt.Errorf("%w %q: must be a bare name, without a directory", ErrBadName, name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("%w %q: must not start with a dot", ErrBadName, name)
	case !strings.HasSuffix(name, ".log") || len(name) == len(".log"):
		return fmt.Errorf("%w %q: must end in .log", ErrBadName, name)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || c == 0xfffd {
			return fmt.Errorf("%w %q: control character or invalid UTF-8", ErrBadName, name)
		}
	}
	return nil
}
