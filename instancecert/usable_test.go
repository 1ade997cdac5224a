package instancecert

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// cert-usable's exit codes over the pairs it meets.
func TestExitCode(t *testing.T) {
	dir := t.TempDir()
	key := ecKey(t)
	keyPEM, _ := KeyPEM(key)
	good, _ := newSelfSigned(key, []string{"localhost"}, testNow)
	other, _ := newSelfSigned(ecKey(t), []string{"localhost"}, testNow)
	late := testNow.Add(900 * 24 * time.Hour)
	for _, tc := range []struct {
		name      string
		cert, key []byte
		now       time.Time
		want      int
	}{
		{"usable", good, keyPEM, testNow, ExitUsable},
		{"missing certificate", nil, keyPEM, testNow, ExitUnusable},
		{"missing key", good, nil, testNow, ExitUnusable},
		{"mismatched", other, keyPEM, testNow, ExitUnusable},
		{"expired, matched: servable", good, keyPEM, late, ExitExpired},
		{"expired and mismatched", other, keyPEM, late, ExitUnusable},
		{"not yet valid", good, keyPEM, testNow.Add(-2 * time.Hour), ExitUnusable},
		{"HTML as certificate", []byte("<html>"), keyPEM, testNow, ExitUnusable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, k := filepath.Join(dir, "c"), filepath.Join(dir, "k")
			os.Remove(c)
			os.Remove(k)
			if tc.cert != nil {
				os.WriteFile(c, tc.cert, 0o644)
			}
			if tc.key != nil {
				os.WriteFile(k, tc.key, 0o600)
			}
			v := Check(c, k, tc.now)
			if got := v.ExitCode(tc.now); got != tc.want {
				t.Fatalf("exit %d (%s), want %d", got, v.Reason, tc.want)
			}
		})
	}
}
