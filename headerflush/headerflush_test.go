package headerflush

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// flushCounter records the flushes that reach the writer beneath.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes int
	err     error
}

func (f *flushCounter) FlushError() error { f.flushes++; return f.err }

func TestWriterHoldsBackOnlyAHeaderOnlyFlushOfAKnownLength(t *testing.T) {
	for _, c := range []struct {
		name          string
		contentLength string
		steps         string // h: WriteHeader, w: Write, W: empty Write, f: Flush
		want          int    // flushes that reach the writer beneath
	}{
		{"known length: the header flush waits for the body", "10", "hfwf", 1},
		{"known length: every flush after the body goes through", "10", "hfwfwf", 2},
		{"known length: an empty write does not start the body", "10", "hfWf", 0},
		{"unknown length (a stream): headers flushed at once", "", "hf", 1},
		{"unknown length: every flush goes through", "", "hfwfwf", 3},
		{"known length, nothing but a flush before WriteHeader", "5", "f", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			under := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
			w := &Writer{ResponseWriter: under}
			if c.contentLength != "" {
				w.Header().Set("Content-Length", c.contentLength)
			}
			for _, s := range c.steps {
				switch s {
				case 'h':
					w.WriteHeader(http.StatusOK)
				case 'w':
					if _, err := w.Write([]byte("12345")); err != nil {
						t.Fatal(err)
					}
				case 'W':
					if _, err := w.Write(nil); err != nil {
						t.Fatal(err)
					}
				case 'f':
					w.Flush()
				}
			}
			if under.flushes != c.want {
				t.Errorf("%d flushes reached the writer, want %d", under.flushes, c.want)
			}
		})
	}
}

func TestWriterPassesFlushErrorsAndUnwraps(t *testing.T) {
	boom := errors.New("boom")
	under := &flushCounter{ResponseRecorder: httptest.NewRecorder(), err: boom}
	w := &Writer{ResponseWriter: under}
	if err := http.NewResponseController(w).Flush(); !errors.Is(err, boom) {
		t.Errorf("flush error %v, want %v", err, boom)
	}
	if w.Unwrap() != http.ResponseWriter(under) {
		t.Error("Unwrap does not return the writer beneath")
	}
	// Hijack is not ours: ResponseController finds it (or its absence)
	// beneath, through Unwrap.
	if _, _, err := http.NewResponseController(w).Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack through the wrapper: %v", err)
	}
}
