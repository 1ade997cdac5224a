package logstream

import (
	"strings"
	"testing"
)

var (
	plainLine   = []byte(`INFO:     127.0.0.1:52344 - "GET /api/v1/models HTTP/1.1" 200 OK`)
	colourLine  = []byte("\x1b[32mINFO\x1b[0m:     127.0.0.1:52344 - \"GET /api/v1/models HTTP/1.1\" \x1b[32m200 OK\x1b[0m")
	nestedBlock = []byte(strings.Repeat("\router:  50%|#####     | 1/2\n\rinner:  30%|###       | 3/10\x1b[A", 20))
)

// The plain fast path against terminal-to-html on the same line: the
// ratio is why plain lines skip the emulator.
func BenchmarkRenderLinePlainFastPath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = renderLine(plainLine)
	}
}

func BenchmarkRenderLinePlainEmulator(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = renderEmulated(plainLine)
	}
}

func BenchmarkRenderLineColour(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = renderLine(colourLine)
	}
}

// A stream of 1000 plain lines per write, through filter and renderer.
func BenchmarkRendererPlainStream(b *testing.B) {
	chunk := []byte(strings.Repeat(string(plainLine)+"\n", 1000))
	r := newRenderer(0, 0)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		r.Write(chunk)
	}
}

// tqdm nested bars in block mode (terminal-to-html window, 24 lines).
func BenchmarkRendererNestedBars(b *testing.B) {
	r := newRenderer(0, 0)
	b.SetBytes(int64(len(nestedBlock)))
	b.ReportAllocs()
	for b.Loop() {
		r.Write(nestedBlock)
	}
}
