package logstream

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	terminal "github.com/buildkite/terminal-to-html/v3"
)

// view applies render results the way a client does: final lines plus the
// live block.
type view struct {
	final []string
	live  []string
}

func (v *view) apply(res renderResult) {
	for _, c := range res.changes {
		if c.lines == nil {
			v.final = v.final[:max(0, len(v.final)-c.reopen)]
		} else {
			v.final = append(v.final, c.lines...)
		}
		v.live = nil
	}
	if res.liveChanged {
		v.live = res.live
	}
}

func (v *view) all() []string { return append(slices.Clone(v.final), v.live...) }

func renderAll(chunks ...string) *view {
	r := newRenderer(8, 0)
	v := &view{}
	for _, c := range chunks {
		v.apply(r.Write([]byte(c)))
	}
	return v
}

func TestRenderSamples(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		final  []string
		live   []string
	}{
		{
			name:   "plain lines, partial last",
			chunks: []string{"one\ntwo\nthr", "ee\nfour"},
			final:  []string{"one", "two", "three"},
			live:   []string{"four"},
		},
		{
			name: "tqdm single bar redraws with \\r",
			chunks: []string{
				"\r  0%|          | 0/100 [00:00<?, ?it/s]",
				"\r 50%|█████     | 50/100 [00:01<00:01, 49.9it/s]",
				"\r100%|██████████| 100/100 [00:02<00:00, 49.9it/s]\n",
				"done\n",
			},
			final: []string{"100%|██████████| 100&#47;100 [00:02&lt;00:00, 49.9it&#47;s]", "done"},
		},
		{
			name: "tqdm nested bars rewrite a block with ESC[A",
			chunks: []string{
				"loading\n",
				"\router:   0%|  | 0/2",
				"\n\rinner:   0%|  | 0/3\x1b[A",
				"\router:  50%|# | 1/2",
				"\n\rinner: 100%|##| 3/3\x1b[A",
			},
			// The lines just above the first cursor-up are reopened: they
			// may be the bars being redrawn.
			final: nil,
			live:  []string{"loading", "outer:  50%|# | 1&#47;2", "inner: 100%|##| 3&#47;3"},
		},
		{
			name: "pip download bar with erase-line",
			chunks: []string{
				"Collecting torch\n",
				"   \x1b[38;5;237m━━━━━━━━\x1b[0m \x1b[32m0.1/2.0 GB\x1b[0m",
				"\r\x1b[2K   \x1b[38;5;197m━━━━━━━━\x1b[0m \x1b[32m2.0/2.0 GB\x1b[0m\n",
			},
			final: []string{
				"Collecting torch",
				`   <span class="term-fgx197">━━━━━━━━</span> <span class="term-fg32">2.0&#47;2.0 GB</span>`,
			},
		},
		{
			name:   "uvicorn colours become spans, markup is escaped",
			chunks: []string{"\x1b[32mINFO\x1b[0m:     Uvicorn running on \x1b[1mhttp://0.0.0.0:8000\x1b[0m <script>alert(1)</script>\n"},
			final:  []string{`<span class="term-fg32">INFO</span>:     Uvicorn running on <span class="term-fg1">http:&#47;&#47;0.0.0.0:8000</span> &lt;script&gt;alert(1)&lt;&#47;script&gt;`},
		},
		{
			name:   "OSC links and images are dropped, their text kept",
			chunks: []string{"\x1b]8;;javascript:alert(1)\x07click\x1b]8;;\x07 \x1b]1338;url=/api/processes/stop;alt=x\x07end\n"},
			final:  []string{"click end"},
		},
		{
			// Golden line for 24-bit colour (issue 13): classes the dashboard
			// turns into inline rgb() styles, lowercase hex.
			name:   "24-bit colour, foreground and background",
			chunks: []string{"\x1b[38;2;255;0;16mred\x1b[48;2;1;2;171m on blue\x1b[0m \x1b[1;38;2;0;128;255mbold\x1b[0m\n"},
			final: []string{`<span class="term-fgt-ff0010">red</span><span class="term-fgt-ff0010 term-bgt-0102ab"> on blue</span> ` +
				`<span class="term-fgt-0080ff term-fg1">bold</span>`},
		},
		{
			name:   "24-bit colour, colon form, beside 256 colours",
			chunks: []string{"\x1b[38:2::10:20:30ma\x1b[38;5;255mb\x1b[38:2:1:2:3mc\x1b[38:5:9md\x1b[0m\n"},
			final:  []string{`<span class="term-fgt-0a141e">a</span><span class="term-fgx255">b</span><span class="term-fgt-010203">c</span><span class="term-fgx9">d</span>`},
		},
		{
			// terminal-to-html panics on these (index out of range) and
			// prints the colon form as text: both must come out as colour or
			// nothing.
			name:   "malformed 24-bit colour neither panics nor leaks",
			chunks: []string{"\x1b[38;2;1;2;3;4mx\x1b[38;;2;1;2;3;4my\x1b[48;2;300;0;0mz\x1b[38;2;1m!\x1b[0m\n"},
			final:  []string{`<span class="term-fgt-010203 term-fg4">x</span><span class="term-fg2 term-fg3 term-fg4">yz!</span>`},
		},
		{
			name: "24-bit colour in block mode",
			chunks: []string{
				"\x1b[38;2;0;255;0mgreen\x1b[0m\n",
				"\rbar 1\n\x1b[A\r\x1b[38;2;255;255;0mbar 2\x1b[0m",
			},
			live: []string{`<span class="term-fgt-00ff00">green</span>`, `<span class="term-fgt-ffff00">bar 2</span>`},
		},
		{
			name:   "escape sequence split across reads",
			chunks: []string{"\x1b[3", "1mred\x1b", "[0m\n"},
			final:  []string{`<span class="term-fg31">red</span>`},
		},
		{
			name:   "invalid UTF-8 and controls",
			chunks: []string{"bad\xff\xfe ok\x00\x07 é\xc3", "\xa9\n"},
			final:  []string{"bad\uFFFD\uFFFD ok é\u00e9"},
		},
		{
			name:   "back to plain after many lines",
			chunks: []string{"a\x1b[Ab\n", strings.Repeat("x\n", 20)},
			final:  append([]string{"ab"}, slices.Repeat([]string{"x"}, 20)...),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := renderAll(tc.chunks...)
			if !slices.Equal(v.final, tc.final) {
				t.Errorf("final:\n got %q\nwant %q", v.final, tc.final)
			}
			if !slices.Equal(v.live, tc.live) {
				t.Errorf("live:\n got %q\nwant %q", v.live, tc.live)
			}
		})
	}
}

// The nested-bar block must render the same whatever the read boundaries.
func TestRenderChunkingInvariant(t *testing.T) {
	input := "start\n\rA 0%\n\rB 0%\x1b[A\rA 50%\n\rB 50%\x1b[A\rA 100%\n\rB 100%\n\ntail line\n"
	want := renderAll(input).all()
	for step := 1; step < 9; step++ {
		var chunks []string
		for i := 0; i < len(input); i += step {
			chunks = append(chunks, input[i:min(i+step, len(input))])
		}
		if got := renderAll(chunks...).all(); !slices.Equal(got, want) {
			t.Errorf("step %d:\n got %q\nwant %q", step, got, want)
		}
	}
}

func TestRenderLongLine(t *testing.T) {
	r := newRenderer(8, 1024)
	v := &view{}
	v.apply(r.Write([]byte(strings.Repeat("x", 2<<20))))
	v.apply(r.Write([]byte("\nnext\n")))
	if len(v.final) != 2 || v.final[1] != "next" {
		t.Fatalf("got %d lines, last %q", len(v.final), v.final[len(v.final)-1])
	}
	if !strings.HasSuffix(v.final[0], TruncatedMarker) || len(v.final[0]) > 1024+len(TruncatedMarker) {
		t.Fatalf("long line not capped with marker: len %d", len(v.final[0]))
	}
}

// A progress bar redrawn forever on one line keeps bounded memory.
func TestRenderEndlessCarriageReturns(t *testing.T) {
	r := newRenderer(8, 1024)
	for i := range 10000 {
		r.Write([]byte("\rprogress " + strings.Repeat("#", i%50)))
	}
	if len(r.partial) > 3*1024 {
		t.Fatalf("partial line grew to %d bytes", len(r.partial))
	}
	if live := r.Live(); len(live) != 1 || !strings.HasPrefix(live[0], "progress") {
		t.Fatalf("live = %q", live)
	}
}

func FuzzRenderLine(f *testing.F) {
	for _, s := range []string{"plain", "a<b>&\"'/", "tab\there", "é ✓ 日本", "\x1b[31mred", "a\rb",
		"\x1b[38;2;1;2;3;4mx", "\x1b[38;;2;1;2;3;4my", "\x1b[38:2:1:2:3mz", "\x1b[48:2::1:2:3:4:5m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// Lines reach renderLine through the filter, one at a time.
		clean := newFilter(0).Write(nil, []byte(raw)).out
		for _, line := range strings.Split(string(clean), "\n") {
			got := renderLine([]byte(line))
			if !strings.ContainsAny(line, "\x1b\r\b") {
				// The fast path must agree with the emulator…
				if want := renderEmulated([]byte(line)); got != want && want != "" {
					t.Fatalf("fast path %q != emulator %q", got, want)
				}
			}
			// …and no markup but colour spans may come out.
			stripped := spanRE.ReplaceAllString(got, "")
			if strings.ContainsAny(stripped, "<>") {
				t.Fatalf("markup leaked: %q -> %q", raw, got)
			}
		}
	})
}

var spanRE = regexp.MustCompile(`<span class="[a-z0-9 -]*">|</span>`)

func FuzzFilter(f *testing.F) {
	for _, s := range []string{"\x1b]8;;x\x07y", "\x1b[1;31mz\x1b[0m", "\xff\xfe", "\x1b[A\x1bM\x1b8", "a\x00b\x07c"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		whole := newFilter(256).Write(nil, in).out
		fl := newFilter(256)
		var parts []byte
		k := int(split)%max(1, len(in)) + 1
		for i := 0; i < len(in); i += k {
			parts = fl.Write(parts, in[i:min(i+k, len(in))]).out
		}
		if !utf8.Valid(whole) {
			t.Fatalf("invalid UTF-8 out of %q", in)
		}
		if string(whole) != string(parts) {
			t.Fatalf("split at %d changed output: %q vs %q", k, whole, parts)
		}
		for _, c := range whole {
			if c < 0x20 && c != '\n' && c != '\r' && c != '\b' && c != '\t' && c != 0x1b {
				t.Fatalf("control %#x passed", c)
			}
		}
		if strings.Contains(string(whole), "\x1b]") || strings.Contains(string(whole), "\x1b_") {
			t.Fatalf("string command passed: %q", whole)
		}
	})
}

// rewriteSGR hands terminal-to-html only SGR parameters it handles: plain
// numbers 0-255, and colours as 38;5;N / 48;5;N. The library renders the
// result without panicking, and no class but colour and style classes
// comes out.
func FuzzRewriteSGR(f *testing.F) {
	for _, s := range []string{"\x1b[38;2;1;2;3mx", "\x1b[38;2;1;2;3;4mx", "\x1b[38;;2;1;2;3;4m", "\x1b[38:2::1:2:3m",
		"\x1b[48:5:9m", "\x1b[0;1;38;5;300m", "\x1b[38m", "\x1b[5;38;2m", "\x1b[?25h\x1b[1:2A"} {
		f.Add(s)
	}
	classRE := regexp.MustCompile(`^term-(fg|bg)(\d+|i\d+|x\d+|t-[0-9a-f]{6})$`)
	f.Fuzz(func(t *testing.T, raw string) {
		clean := newFilter(0).Write(nil, []byte(raw)).out
		var pal palette
		out := rewriteSGR(clean, &pal)
		for _, m := range regexp.MustCompile("\x1b\\[([0-9;:?]*)m").FindAllSubmatch(out, -1) {
			params := strings.Split(string(m[1]), ";")
			for i := 0; i < len(params); i++ {
				p := params[i]
				if strings.Contains(p, ":") {
					t.Fatalf("colon form reached the library: %q", out)
				}
				if p == "38" || p == "48" {
					if i+2 >= len(params) || params[i+1] != "5" {
						t.Fatalf("colour without 5;N reached the library: %q", out)
					}
					i += 2
				}
			}
		}
		html := pal.apply(terminal.Render(out)) // must not panic
		for _, m := range regexp.MustCompile(`class="([^"]*)"`).FindAllStringSubmatch(html, -1) {
			for _, cl := range strings.Fields(m[1]) {
				if !classRE.MatchString(cl) {
					t.Fatalf("class %q from %q", cl, raw)
				}
			}
		}
	})
}
