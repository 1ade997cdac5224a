package portalcmd

import (
	"strings"
	"testing"
)

func TestRedactLines(t *testing.T) {
	var out strings.Builder
	in := "downloading PROVISIONING_SCRIPT https://u:PASSWORD@h.example/p.sh?token=T0KEN failed\nplain line\n"
	if err := redactLines(&out, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "downloading PROVISIONING_SCRIPT https://…@h.example/p.sh?… failed\nplain line\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
