package capabilities

import (
	"path/filepath"
	"sort"
)

// agentsGuide lists the guide files, base.md first, the others sorted.
func agentsGuide(dir, combined string) AgentsGuide {
	files, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	sort.Strings(files)
	base := filepath.Join(dir, BaseGuide)
	ordered := []string{}
	for _, f := range files {
		if f == base {
			ordered = append([]string{f}, ordered...)
		} else {
			ordered = append(ordered, f)
		}
	}
	return AgentsGuide{
		Combined: combined,
		Dir:      dir + "/",
		Files:    ordered,
		Instruction: "Read the file at 'combined' before you act on this instance: it holds the full text of " +
			"every file in 'files', one after the other. The per-image guides describe the services and " +
			"APIs that image adds.",
	}
}
