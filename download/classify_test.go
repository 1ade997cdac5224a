package download

import (
	"net/url"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		in                   string
		kind, repo, rev, fil string
		err                  string
	}{
		{in: "https://huggingface.co/org/repo/resolve/main/model.safetensors", kind: KindHF, repo: "org/repo", rev: "main", fil: "model.safetensors"},
		{in: "https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/text_encoder/model.safetensors", kind: KindHF, repo: "black-forest-labs/FLUX.1-dev", rev: "main", fil: "text_encoder/model.safetensors"},
		{in: "https://huggingface.co/org/repo/resolve/abc123/a/b/c/d.bin?download=true", kind: KindHF, repo: "org/repo", rev: "abc123", fil: "a/b/c/d.bin"},
		{in: "https://huggingface.co/org/repo/resolve/main/a%20b.bin", kind: KindHF, repo: "org/repo", rev: "main", fil: "a b.bin"},
		{in: "https://huggingface.co/meta-llama/Llama-3-8B", kind: KindHFRepo, repo: "meta-llama/Llama-3-8B"},
		{in: "https://huggingface.co/meta-llama/Llama-3-8B/", kind: KindHFRepo, repo: "meta-llama/Llama-3-8B"},
		{in: "https://huggingface.co/org/repo/blob/main/file.bin", err: "Invalid HuggingFace URL"},
		{in: "https://huggingface.co/org/repo/resolve/main/../../x", err: "Invalid HuggingFace URL"},
		{in: "https://huggingface.co/../x/resolve/main/f", err: "Invalid HuggingFace URL"},
		{in: "http://huggingface.co/org/repo", err: "Invalid HuggingFace URL"},
		{in: "https://cdn-lfs.huggingface.co/x", err: "Invalid HuggingFace URL"},
		{in: "https://hf.co/org/repo/resolve/main/a.bin", kind: KindURL}, // the reference sends hf.co to wget
		{in: "https://civitai.com/api/download/models/123", kind: KindCivitAI},
		{in: "https://mirror.civitai.com/models/123", kind: KindCivitAI},
		{in: "https://CivitAI.com/api/download/models/1", kind: KindCivitAI},
		// The host decides, never a substring (the reference's lookalikes).
		{in: "https://attacker.example/civitai.com/model.safetensors", kind: KindURL},
		{in: "https://civitai.com.attacker.example/x", kind: KindURL},
		{in: "https://evil.example/x?ref=civitai.com", kind: KindURL},
		{in: "https://notcivitai.com/x", kind: KindURL},
		{in: "http://civitai.com/api/download/models/123", kind: KindURL}, // no token in cleartext
		{in: "https://u:p@example.com/file.bin", kind: KindURL},
		{in: "ftp://example.com/x", err: "unsupported URL"},
		{in: "/local/path", err: "unsupported URL"},
		{in: "https://u:secret@[::1", err: "invalid URL"},
		{in: "//u:secret@host/x", err: "unsupported URL"},
	} {
		got, err := Classify(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Classify(%q) = %+v, %v; want error %q", c.in, got, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("Classify(%q): error shows the password: %v", c.in, err)
			}
			continue
		}
		if err != nil || got.Kind != c.kind || got.Repo != c.repo || got.Revision != c.rev || got.File != c.fil {
			t.Errorf("Classify(%q) = %+v, %v; want %s %s %s %s", c.in, got, err, c.kind, c.repo, c.rev, c.fil)
		}
	}
}

func TestDryRunLine(t *testing.T) {
	for _, c := range []struct{ url, dest, want string }{
		{"https://huggingface.co/org/repo/resolve/main/model.bin", "/tmp/model.bin", "[DRY RUN] Would download HF org/repo/model.bin -> /tmp/model.bin"},
		{"https://huggingface.co/org/repo/resolve/main/sub/model.bin", "/tmp/models/", "[DRY RUN] Would download HF org/repo/sub/model.bin -> /tmp/models/model.bin"},
		{"https://huggingface.co/org/repo/resolve/main/model.bin", "", "[DRY RUN] Would download HF org/repo/model.bin -> HF cache"},
		{"https://huggingface.co/meta-llama/Llama-3-8B", "/workspace/models/llama3", "[DRY RUN] Would download HF repo meta-llama/Llama-3-8B -> /workspace/models/llama3"},
		{"https://huggingface.co/meta-llama/Llama-3-8B", "", "[DRY RUN] Would download HF repo meta-llama/Llama-3-8B -> HF cache"},
		{"https://example.com/file.bin", "/tmp/file.bin", "[DRY RUN] Would download wget https://example.com/file.bin -> /tmp/file.bin"},
		{"https://civitai.com/api/download/models/12345", "/tmp/models/", "[DRY RUN] Would download wget https://civitai.com/api/download/models/12345 -> /tmp/models/<content-disposition>"},
		{"https://u:pw@example.com/f.bin?token=abc", "/tmp/f.bin", "[DRY RUN] Would download wget https://…@example.com/f.bin?… -> /tmp/f.bin"},
		{"https://huggingface.co/org/repo/tree/main", "/x", "[DRY RUN] Invalid download: Invalid HuggingFace URL: https://huggingface.co/org/repo/tree/main"},
	} {
		if got := DryRunLine(Spec{URL: c.url, Dest: c.dest}, Options{}); got != c.want {
			t.Errorf("DryRunLine(%q, %q)\n got %q\nwant %q", c.url, c.dest, got, c.want)
		}
	}
}

func TestServerFileName(t *testing.T) {
	for _, c := range []struct{ cd, want string }{
		{`attachment; filename="model_v2.safetensors"`, "model_v2.safetensors"},
		{`attachment; filename=file.bin`, "file.bin"},
		{`attachment; filename*=UTF-8''caf%C3%A9.bin`, "café.bin"},
		{`attachment; filename="../../etc/passwd"`, "passwd"},
		{`attachment; filename="..\..\x.bin"`, "x.bin"},
		{`attachment; filename=".."`, "fallback"},
		{`attachment; filename="a` + "\n" + `b"`, "fallback"},
		{``, "fallback"},
		{`attachment; filename=bad"quote; x`, `bad"quote`},
	} {
		if got := serverFileName(c.cd, "fallback"); got != c.want {
			t.Errorf("serverFileName(%q) = %q, want %q", c.cd, got, c.want)
		}
	}
	if got := urlFileName("https://h/a/b/model.bin?sig=1"); got != "model.bin" {
		t.Error(got)
	}
	if got := urlFileName("https://h/"); got != "download" {
		t.Error(got)
	}
}

func TestParseContentRange(t *testing.T) {
	for _, c := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 100-199/200", 100, 200, true},
		{"bytes */200", 0, 200, true},
		{"bytes 1-2/*", 0, 0, false},
		{"items 1-2/3", 0, 0, false},
	} {
		s, n, ok := parseContentRange(c.in)
		if s != c.start || n != c.total || ok != c.ok {
			t.Errorf("parseContentRange(%q) = %d %d %v", c.in, s, n, ok)
		}
	}
}

// FuzzClassify checks the classifier's promises on any input: the CivitAI
// token's kind only for https on a civitai.com host, the Hugging Face kinds
// only for the hub's host with a file path that stays inside the repo, and
// no credential of the URL in an error or a dry-run line.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"https://huggingface.co/org/repo/resolve/main/model.safetensors",
		"https://huggingface.co/meta-llama/Llama-3-8B/",
		"https://civitai.com/api/download/models/1",
		"https://civitai.com.evil.example/x",
		"https://evil.example/civitai.com",
		"https://u:SECRETPW@example.com/x?token=SECRETPW",
		"https://huggingface.co/a/b/resolve/main/../../../etc/passwd",
		"http://[::1]:80/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := Classify(raw)
		line := DryRunLine(Spec{URL: raw, Dest: "/d/"}, Options{})
		if u, perr := url.Parse(raw); perr == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && len(pw) > 3 && !strings.Contains("[DRY RUN] Would download wget ->/d/<content-disposition> https://…@", pw) {
				if strings.Contains(line, pw) {
					t.Fatalf("dry-run line shows the password: %q", line)
				}
				if err != nil && strings.Contains(err.Error(), pw) {
					t.Fatalf("error shows the password: %v", err)
				}
			}
		}
		if err != nil {
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("classified an unparsable URL %q", raw)
		}
		host := strings.ToLower(u.Hostname())
		switch tg.Kind {
		case KindCivitAI:
			if u.Scheme != "https" || !(host == "civitai.com" || strings.HasSuffix(host, ".civitai.com")) {
				t.Fatalf("%q classified CivitAI", raw)
			}
		case KindHF, KindHFRepo:
			if !strings.HasPrefix(raw, "https://huggingface.co/") || !validRepo(tg.Repo) {
				t.Fatalf("%q classified HF: %+v", raw, tg)
			}
			if tg.Kind == KindHF && (!validRepoPath(tg.File) || strings.Contains("/"+tg.File+"/", "/../")) {
				t.Fatalf("%q: file path %q leaves the repository", raw, tg.File)
			}
		case KindURL:
			if u.Scheme != "http" && u.Scheme != "https" {
				t.Fatalf("%q classified URL", raw)
			}
		default:
			t.Fatalf("kind %q", tg.Kind)
		}
	})
}
