package tunnels

import "testing"

// Every line cloudflared prints goes through the URL and rate-limit
// checks; these show the per-line cost on typical lines.
var benchLines = []string{
	"2024-05-01T10:00:01Z INF Registered tunnel connection connIndex=0 connection=3782d772-4d6e-4b53-9fb5-a3d0d6c6f0a1 event=0 ip=198.41.192.7 location=ams08 protocol=http2",
	"2024-05-01T10:00:01Z INF |  https://seasonal-shorts-invention-accessibility.trycloudflare.com                            |",
}

func BenchmarkQuickTunnelURLFromLine(b *testing.B) {
	for _, name := range []string{"plain", "banner"} {
		line := benchLines[0]
		if name == "banner" {
			line = benchLines[1]
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				quickTunnelURLFromLine(line)
				isRateLimitLine(line)
			}
		})
	}
}
