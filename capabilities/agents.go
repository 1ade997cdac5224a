package capabilities

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/instanceportal/portal/atomicfile"
)

// Agent-facing boot settings, declared here once.
const (
	// AgentBannerEnv turns the login banner's agent line off when "false"
	// (the boot flag --no-agent-banner sets it). Default: true
	AgentBannerEnv = "ENABLE_AGENT_BANNER"
	// DefaultBannerFile is the SSH banner sshd shows at every connection;
	// the platform writes it, the boot appends the agent line.
	DefaultBannerFile = "/etc/banner"
	// BannerPrefix starts the agent line, so a later boot can find it.
	BannerPrefix = "AI agents:"
	// MaxGuideBytes bounds one guide file copied into the combined guide.
	MaxGuideBytes = 1 << 20
)

// GuideNames are the names the combined guide is linked as, where agents
// look for instructions.
var GuideNames = []string{"AGENTS.md", "CLAUDE.md"}

// BannerEnabled reads ENABLE_AGENT_BANNER: only "false" (any case) turns
// the line off.
func BannerEnabled(v string) bool {
	return !strings.EqualFold(strings.TrimSpace(v), "false")
}

// BannerLine is the line the login banner gets.
func BannerLine(combined string) string {
	return BannerPrefix + " before you act on this instance, read " + combined +
		" (linked as ./AGENTS.md): it is this instance's operating guide. `vast-capabilities` prints its live state."
}

// orderedGuides is base.md first, then the framework guides (pytorch,
// tensorflow), then the others by name: each guide may refer to those
// above it.
func orderedGuides(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	rank := func(f string) int {
		switch filepath.Base(f) {
		case BaseGuide:
			return 0
		case "pytorch.md":
			return 1
		case "tensorflow.md":
			return 2
		}
		return 3
	}
	out := make([]string, 0, len(files))
	for r := 0; r <= 3; r++ {
		for _, f := range files { // Glob returns them sorted
			if rank(f) == r {
				out = append(out, f)
			}
		}
	}
	return out
}

// CombinedGuide is every guide of dir in one text: an index, then each
// file's full text under a separator. It returns the text and the files
// it holds; a file that cannot be read is named in the text instead.
func CombinedGuide(dir string) ([]byte, []string) {
	files := orderedGuides(dir)
	var b bytes.Buffer
	b.WriteString("# Agent guide for this instance\n\n")
	fmt.Fprintf(&b, "This file is the whole agent guide: the %d guide(s) below, one after the other (each also lives in %s/).\n", len(files), dir)
	b.WriteString("Read all of it before you act on the instance; the later sections describe what this image adds.\n\n")
	for i, f := range files {
		fmt.Fprintf(&b, "  %d. %s — %s\n", i+1, filepath.Base(f), guideTitle(f))
	}
	b.WriteString("\n")
	for _, f := range files {
		fmt.Fprintf(&b, "=================== %s ===================\n\n", filepath.Base(f))
		data, err := readBounded(f, MaxGuideBytes)
		if err != nil {
			fmt.Fprintf(&b, "(%s could not be read: %v)\n\n", f, err)
			continue
		}
		b.Write(data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	return b.Bytes(), files
}

// guideTitle is a guide's first Markdown heading, or its name.
func guideTitle(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return filepath.Base(path)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan() && n < 200; n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			if t := strings.TrimSpace(strings.TrimLeft(line, "#")); t != "" {
				return t
			}
		}
	}
	return filepath.Base(path)
}

// LinkGuide links each of GuideNames in each existing directory of dirs
// to target. A name that is absent, or a link already pointing at target
// or at one of ours (legacy: the base guide), is (re)made; anything else —
// a user's own file or link — is left alone. It returns one line per
// name saying what it did.
func LinkGuide(target string, dirs []string, ours ...string) []string {
	var out []string
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		for _, name := range GuideNames {
			p := filepath.Join(dir, name)
			cur, err := os.Readlink(p)
			_, lerr := os.Lstat(p)
			switch {
			case errors.Is(lerr, fs.ErrNotExist):
			case err == nil && (cur == target || contains(ours, cur)):
				if cur == target {
					out = append(out, "kept "+p+" -> "+target)
					continue
				}
				if err := os.Remove(p); err != nil {
					out = append(out, fmt.Sprintf("left %s: %v", p, err))
					continue
				}
			default:
				out = append(out, "left "+p+" alone: it is not ours")
				continue
			}
			if err := os.Symlink(target, p); err != nil {
				out = append(out, fmt.Sprintf("could not link %s: %v", p, err))
				continue
			}
			out = append(out, "linked "+p+" -> "+target)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// UpdateBanner removes the agent line from the banner file and, when
// enabled, appends line. A missing banner file is left missing: the
// platform owns it. It reports whether the file exists.
func UpdateBanner(path, line string, enabled bool) (bool, error) {
	data, err := readBounded(path, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	var b bytes.Buffer
	for l := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(l, BannerPrefix) {
			continue
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	text := strings.TrimRight(b.String(), "\n")
	if text != "" {
		text += "\n"
	}
	if enabled {
		text += line + "\n"
	}
	fi, err := os.Stat(path)
	if err != nil {
		return true, err
	}
	return true, atomicfile.Write(path, []byte(text), fi.Mode().Perm())
}
