package portalcmd

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/instanceportal/portal/instancecert"
	"github.com/instanceportal/portal/portalconfig"
)

func TestCertConfigFromEnv(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		wantID     string
		wantHosts  []string
		wantSigner string
		wantNote   string
	}{
		{name: "nothing set: no signer", env: map[string]string{}, wantHosts: []string{"localhost", "127.0.0.1"}},
		{name: "the container label without C.", env: map[string]string{"VAST_CONTAINERLABEL": "C.123"}, wantID: "123",
			wantHosts: []string{"localhost", "127.0.0.1"}, wantSigner: instancecert.DefaultConsoleSigner + "?instance_id=123"},
		{name: "CONTAINER_ID wins", env: map[string]string{"VAST_CONTAINERLABEL": "C.123", "CONTAINER_ID": "77"}, wantID: "77",
			wantHosts: []string{"localhost", "127.0.0.1"}, wantSigner: instancecert.DefaultConsoleSigner + "?instance_id=77"},
		{name: "signer off, public address added", env: map[string]string{"CONTAINER_ID": "77", "INSTANCE_CERT_SIGNER_URL": "off", "PUBLIC_IPADDR": "203.0.113.5"},
			wantID: "77", wantHosts: []string{"localhost", "127.0.0.1", "203.0.113.5"}},
		{name: "a bad public address is left out and named", env: map[string]string{"PUBLIC_IPADDR": "a;b"},
			wantHosts: []string{"localhost", "127.0.0.1"}, wantNote: `PUBLIC_IPADDR="a;b" is not a host name or address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, note := certConfigFromEnv(portalconfig.Environ(tt.env))
			if cfg.InstanceID != tt.wantID || !slices.Equal(cfg.Hosts, tt.wantHosts) || cfg.Signer() != tt.wantSigner ||
				!strings.Contains(note, tt.wantNote) || (tt.wantNote == "" && note != "") {
				t.Fatalf("got %+v signer %q note %q", cfg, cfg.Signer(), note)
			}
			if cfg.StateDir != portalconfig.DefaultStateDir {
				t.Errorf("state dir %q", cfg.StateDir)
			}
		})
	}
}

// TestCertEnsureCommand: the command makes a pair once, then keeps it.
func TestCertEnsureCommand(t *testing.T) {
	dir := t.TempDir()
	env := portalconfig.Environ(map[string]string{
		"INSTANCE_CERT": filepath.Join(dir, "i.crt"), "INSTANCE_KEY": filepath.Join(dir, "i.key"),
		"PORTAL_STATE_DIR": dir, "INSTANCE_CERT_SIGNER_URL": "off",
	})
	var out bytes.Buffer
	if err := runCertEnsure(context.Background(), &out, env); err != nil || !strings.Contains(out.String(), "self-signed for localhost, 127.0.0.1") {
		t.Fatalf("first: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := runCertEnsure(context.Background(), &out, env); err != nil || !strings.Contains(out.String(), "usable, kept") {
		t.Fatalf("second: %v\n%s", err, out.String())
	}
	bad := portalconfig.Environ(map[string]string{"INSTANCE_CERT": "/x", "INSTANCE_KEY": "/x"})
	if err := runCertEnsure(context.Background(), &out, bad); err == nil || !strings.Contains(err.Error(), "key_file: /x is also cert_file") {
		t.Fatalf("bad config: %v", err)
	}
}
