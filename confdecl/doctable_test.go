package confdecl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const docSample = `package x

// Settings is a sample.
type Settings struct {
	// Wait is how long to wait. Default: 45s
	Wait Duration ` + "`json:\"wait,omitempty\"`" + `
	// Dir is where. Default: none (in memory)
	Dir string ` + "`json:\"dir,omitempty\"`" + `
	// Names | pipes are escaped.
	Names []string ` + "`json:\"names,omitempty\"`" + `
}
`

type docSettings struct {
	Wait  Duration `json:"wait,omitempty"`
	Dir   string   `json:"dir,omitempty"`
	Names []string `json:"names,omitempty"`
}

func writeSample(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDocTable(t *testing.T) {
	t.Parallel()
	dir := writeSample(t, docSample)
	got, err := DocTable(dir, "Settings", docSettings{Wait: Duration(45 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	want := "| key | type | default | meaning |\n|---|---|---|---|\n" +
		"| `wait` | duration | `45s` | Wait is how long to wait. |\n" +
		"| `dir` | string | — | Dir is where. Default (in memory). |\n" +
		"| `names` | list of strings | — | Names \\| pipes are escaped. |\n"
	if got != want {
		t.Fatalf("DocTable =\n%s\nwant\n%s", got, want)
	}
}

func TestDocTableDrift(t *testing.T) {
	t.Parallel()
	dir := writeSample(t, docSample)
	_, err := DocTable(dir, "Settings", docSettings{Wait: Duration(time.Minute)})
	if err == nil || !strings.Contains(err.Error(), `Settings.Wait (wait): godoc says "Default: 45s" but Default() gives `+"`1m`") {
		t.Fatalf("err = %v", err)
	}
	if _, err := DocTable(dir, "Nope", docSettings{}); err == nil || !strings.Contains(err.Error(), "no struct type Nope") {
		t.Fatalf("missing type: err = %v", err)
	}
	undocumented := writeSample(t, strings.Replace(docSample, "\t// Dir is where. Default: none (in memory)\n", "", 1))
	if _, err := DocTable(undocumented, "Settings", docSettings{Wait: Duration(45 * time.Second)}); err == nil || !strings.Contains(err.Error(), "Settings.Dir (dir): no godoc") {
		t.Fatalf("undocumented: err = %v", err)
	}
}

func TestReplaceBetween(t *testing.T) {
	t.Parallel()
	doc := "a\n<!-- begin t -->\nold\n<!-- end t -->\nb\n"
	got, err := ReplaceBetween(doc, "t", "new\n")
	if err != nil || got != "a\n<!-- begin t -->\nnew\n<!-- end t -->\nb\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := ReplaceBetween("no markers", "t", ""); err == nil {
		t.Fatal("want an error without markers")
	}
}
