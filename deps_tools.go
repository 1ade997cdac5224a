//go:build tools

// Pins modules that the packages use, so `go mod tidy` keeps them while
// several packages are developed at once. Never compiled.
package portal

import (
	_ "github.com/NVIDIA/go-nvml/pkg/nvml"
	_ "github.com/buildkite/terminal-to-html/v3"
	_ "github.com/chromedp/chromedp"
	_ "github.com/coder/websocket"
	_ "github.com/fsnotify/fsnotify"
	_ "gopkg.in/yaml.v3"
)
