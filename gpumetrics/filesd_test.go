package gpumetrics

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestFileSD(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Target
		want []FileSDEntry
		err  string
	}{
		{name: "full", in: Target{PublicIP: "203.0.113.5", PublicPort: 41111, HTTPS: true, InstanceID: "77", Label: "C.77", GPUModel: "NVIDIA H100 80GB HBM3", Host: "h1"},
			want: []FileSDEntry{{Targets: []string{"203.0.113.5:41111"}, Labels: map[string]string{"__scheme__": "https", "__metrics_path__": "/metrics", "instance_id": "77", "container_label": "C.77", "gpu_model": "NVIDIA H100 80GB HBM3", "host": "h1"}}}},
		{name: "no gpu, http, ipv6", in: Target{PublicIP: "2001:db8::1", PublicPort: 1111},
			want: []FileSDEntry{{Targets: []string{"[2001:db8::1]:1111"}, Labels: map[string]string{"__scheme__": "http", "__metrics_path__": "/metrics"}}}},
		{name: "no ip", in: Target{PublicPort: 1}, err: "PUBLIC_IPADDR is not set"},
		{name: "bad ip", in: Target{PublicIP: "a/b", PublicPort: 1}, err: `PUBLIC_IPADDR="a/b"`},
		{name: "no port", in: Target{PublicIP: "1.2.3.4"}, err: "public port 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := FileSD(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			var got []FileSDEntry
			if err != nil || json.Unmarshal(b, &got) != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %s (%v), want %+v", b, err, tc.want)
			}
		})
	}
}
