// Package tartest reads the .tar.gz log archives the portal serves, for
// the tests of more than one package (logstream's handler, the binary's
// /api/logs/download).
package tartest

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"testing"
)

// Read returns an archive's files: name → content. A malformed archive
// fails the test.
func Read(t testing.TB, r io.Reader) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = string(b)
	}
}
