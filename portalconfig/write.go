package portalconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/instanceportal/portal/atomicfile"
)

// MarshalYAML renders the apps as portal.yaml, in order, with every field
// spelled out (so a user editing it sees them all).
func (c *Config) MarshalYAML() ([]byte, error) {
	apps := &yaml.Node{Kind: yaml.MappingNode}
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
	num := func(v int) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)} }
	for _, a := range c.Apps {
		name := a.Name
		if name == "" {
			name = a.Key
		}
		fields := []*yaml.Node{
			str("hostname"), str(a.Hostname),
			str("external_port"), num(a.ExternalPort),
			str("internal_port"), num(a.InternalPort),
			str("open_path"), str(a.OpenPath),
			str("name"), str(name),
		}
		if a.Scheme == "https" {
			// Only the non-default: files written for Vast.ai's image stay as they were.
			fields = append(fields, str("scheme"), str(a.Scheme))
		}
		apps.Content = append(apps.Content, str(name), &yaml.Node{Kind: yaml.MappingNode, Content: fields})
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("applications"), apps}}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFileAtomic replaces path with data so that a reader sees the old file
// or the new one, never a part: it writes a temporary file in the same
// directory, syncs it and renames it over the target. A symlink is followed
// and its target written (the link stays a link). An existing file keeps its
// mode; a new one gets 0644.
func WriteFileAtomic(path string, data []byte) error {
	target, err := resolveLink(path)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(target); err == nil {
		mode = fi.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.WriteDurable(target, data, mode)
}

// resolveLink follows symlinks at path (a bounded number of hops) to the
// file that must be written, which need not exist yet.
func resolveLink(path string) (string, error) {
	for hops := 0; hops < 40; hops++ {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return path, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return path, nil
		}
		dest, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(path), dest)
		}
		path = dest
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}
