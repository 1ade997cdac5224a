package provisioner

import (
	"fmt"
	"strings"
)

// DedupDownloads fetches each URL once: a later entry with the same URL
// and another dest becomes a symlink (target, link) to the first; an exact
// repeat is dropped. Entries without dest, or with a directory dest
// (trailing '/'), are kept as they are, their file name being unknown.
func DedupDownloads(in []Download) (unique []Download, links [][2]string) {
	seen := map[string]string{}
	for _, d := range in {
		if d.Dest == "" || strings.HasSuffix(d.Dest, "/") {
			unique = append(unique, d)
			continue
		}
		first, ok := seen[d.URL]
		switch {
		case !ok:
			seen[d.URL] = d.Dest
			unique = append(unique, d)
		case first != d.Dest:
			links = append(links, [2]string{first, d.Dest})
		}
	}
	return unique, links
}

type gitLinks struct {
	pairs    [][2]string
	warnings []string
}

// DedupGitRepos follows the reference: two entries wanting one dest for
// different (url, ref) move the later to "dest--ref"; then a repeat of
// (url, ref) at another dest becomes a symlink unless it has
// post_commands (they need a directory of their own), and an exact
// repeat is dropped, giving its post_commands to the first if that has
// none.
func DedupGitRepos(in []GitRepo) ([]GitRepo, gitLinks) {
	type key struct{ url, ref string }
	var gl gitLinks
	owners := map[string]key{}
	resolved := make([]GitRepo, 0, len(in))
	for _, g := range in {
		k := key{g.URL, g.Ref}
		if o, ok := owners[g.Dest]; ok && o != k {
			ref := "default"
			if g.Ref != "" {
				ref = strings.NewReplacer("/", "-", `\`, "-").Replace(g.Ref)
			}
			nd := g.Dest + "--" + ref
			gl.warnings = append(gl.warnings, fmt.Sprintf("Git dest collision: %s claimed by (%s, ref=%s) and (%s, ref=%s). Mangling later entry dest to %s",
				g.Dest, o.url, o.ref, g.URL, g.Ref, nd))
			g.Dest = nd
			g.PostCommands = append([]string(nil), g.PostCommands...)
			owners[nd] = k
		} else if !ok {
			owners[g.Dest] = k
		}
		resolved = append(resolved, g)
	}
	var unique []GitRepo
	primary := map[key]int{} // index in unique
	for _, g := range resolved {
		k := key{g.URL, g.Ref}
		i, ok := primary[k]
		switch {
		case !ok:
			primary[k] = len(unique)
			unique = append(unique, g)
		case g.Dest == unique[i].Dest:
			if len(g.PostCommands) > 0 && len(unique[i].PostCommands) == 0 {
				unique[i].PostCommands = append([]string(nil), g.PostCommands...)
			}
		case len(g.PostCommands) > 0:
			unique = append(unique, g)
		default:
			gl.pairs = append(gl.pairs, [2]string{unique[i].Dest, g.Dest})
		}
	}
	return unique, gl
}
