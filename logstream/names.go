package logstream

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadName is matched (errors.Is) by every file-name rejection.
var ErrBadName = errors.New("invalid log file name")

// NameError says what is wrong with a file a client named, in words meant
// for that client: `file "nonexist.log" does not exist`.
type NameError struct {
	Name    string
	Problem string
}

func (e *NameError) Error() string {
	if e.Name == "" {
		return "file name is empty"
	}
	name := e.Name
	if len(name) > 80 {
		name = name[:80] + "…"
	}
	return fmt.Sprintf("file %q %s", name, e.Problem)
}

// Is makes errors.Is(err, ErrBadName) hold.
func (e *NameError) Is(target error) bool { return target == ErrBadName }

func nameErr(name, problem string) error { return &NameError{Name: name, Problem: problem} }

// ValidateName accepts a bare file name ending in ".log": no directory
// part, no "..", no NUL or other control character. It does not check that
// the file exists (the Service does, inside its directory only).
func ValidateName(name string) error {
	switch {
	case name == "":
		return nameErr(name, "")
	case len(name) > 255:
		return nameErr(name, "is longer than 255 bytes")
	case strings.ContainsAny(name, "/\\"):
		return nameErr(name, "must be a bare name, without a directory")
	case strings.HasPrefix(name, "."):
		return nameErr(name, "must not start with a dot")
	case !strings.HasSuffix(name, ".log") || len(name) == len(".log"):
		return nameErr(name, "must end in .log")
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || c == 0xfffd {
			return nameErr(name, "has a control character or invalid UTF-8")
		}
	}
	return nil
}
