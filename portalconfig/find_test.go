package portalconfig

import "testing"

func TestFindLike(t *testing.T) {
	cfg := &Config{Apps: []App{
		{Key: "Instance Portal", Name: "Instance Portal", Hostname: "localhost"},
		{Key: "Jupyter Terminal", Name: "Jupyter Terminal", Hostname: "localhost"},
		{Key: "Jupyter", Name: "Jupyter", Hostname: "localhost"},
		{Key: "comfy", Name: "ComfyUI", Hostname: "syncthing.local"},
	}}
	tests := []struct{ name, want string }{
		{"jupyter", "Jupyter"},           // exact beats the earlier substring match
		{"TERMINAL", "Jupyter Terminal"}, // substring, any case
		{"comfyui", "ComfyUI"},           // the display name
		{"omf", "ComfyUI"},
		{"syncthing", ""}, // a hostname is not a name
		{"", ""},
		{"  ", ""},
	}
	for _, tt := range tests {
		a, ok := cfg.FindLike(tt.name)
		if ok != (tt.want != "") || a.Name != tt.want {
			t.Errorf("FindLike(%q) = %q, %v; want %q", tt.name, a.Name, ok, tt.want)
		}
	}
}
