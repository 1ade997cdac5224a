package download

import (
	"os"
	"path/filepath"
	"testing"
)

// The disk writes start once a whole chunk has been written since the
// last start, from where that one ended (the resume offset at first).
func TestWritebackStartsEachChunk(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		from  int64
		ends  []int64
		wants []int64 // started after each call
	}{
		{"fresh file", 0, []int64{mib, 16*mib - 1, 16 * mib, 20 * mib, 40 * mib}, []int64{0, 0, 16 * mib, 16 * mib, 40 * mib}},
		{"resumed at 100 MiB", 100 * mib, []int64{110 * mib, 116 * mib, 130 * mib}, []int64{100 * mib, 116 * mib, 116 * mib}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "part"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			wb := writeback{f: f, started: tc.from}
			for i, end := range tc.ends {
				if err := f.Truncate(end); err != nil {
					t.Fatal(err)
				}
				wb.wrote(end)
				if wb.started != tc.wants[i] {
					t.Errorf("after data up to %d: started %d, want %d", end, wb.started, tc.wants[i])
				}
			}
		})
	}
}
