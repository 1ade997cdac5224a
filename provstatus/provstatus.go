// Package provstatus is the live progress of a provisioning run, as the
// provisioner (`caddy portal provision`, a process of its own) publishes it
// and the portal (`GET /api/provisioning`, the dashboard) reads it. The two
// meet in one JSON file written atomically (temp file + rename), so a reader
// never sees half a document and neither side needs the other running.
package provstatus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/instanceportal/portal/atomicfile"
)

// Settings of the provisioner that the portal must agree on. Each is
// declared here once.
const (
	// StateDirEnv names the provisioner's state directory (the reference's
	// variable): phase hashes, the stop-once sentinel and this file.
	StateDirEnv = "PROVISIONER_STATE_DIR"
	// DefaultStateDir is the reference's default state directory.
	DefaultStateDir = "/.provisioner_state"
	// FileName is the progress document inside the state directory.
	FileName = "progress.json"
	// RequestsDir, inside the state directory, holds the manifests the
	// portal was asked to run (POST /capabilities/provision, the MCP tool).
	RequestsDir = "requests"
)

// Run states, of the whole run and of one phase or download.
const (
	Pending = "pending"
	Running = "running"
	Done    = "done"
	Skipped = "skipped" // a phase whose content hash says it is already done
	Failed  = "failed"
	Stopped = "stopped" // on_failure: stop, or the process was interrupted
)

// Status is the whole document. Every string that may hold a URL is masked
// by the writer before it is stored; the file is served as is.
type Status struct {
	State      string     `json:"state"`
	Source     string     `json:"source,omitempty"` // manifest path or masked URL
	DryRun     bool       `json:"dry_run,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Phases     []Phase    `json:"phases"`
	Downloads  []Download `json:"downloads"`
	// Command is the command running now, if any, with its last lines.
	Command *Command `json:"command,omitempty"`
	// FailedPhase and Error say why a failed or stopped run ended.
	FailedPhase string `json:"failed_phase,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Phase is one step of the manifest, in the reference's order.
type Phase struct {
	Name       string     `json:"name"`
	State      string     `json:"state"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Items      int        `json:"items,omitempty"` // packages, repos, files…
	Error      string     `json:"error,omitempty"`
}

// Download is one file or repository being fetched.
type Download struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`   // "hf", "hf-repo", "civitai", "url"
	Source string `json:"source"` // masked: never a token or a password
	Dest   string `json:"dest"`
	State  string `json:"state"`
	Bytes  int64  `json:"bytes"`
	Total  int64  `json:"total"` // 0 when the server did not say
	// RateBps is the recent rate in bytes per second; ETASeconds is -1
	// when unknown.
	RateBps    float64 `json:"rate_bps"`
	ETASeconds float64 `json:"eta_seconds"`
	Resumed    bool    `json:"resumed,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// Command is the command a phase runs now.
type Command struct {
	Phase string   `json:"phase"`
	Line  string   `json:"line"` // masked
	Tail  []string `json:"tail"` // its last lines of output, bounded
}

// Path is the progress file under stateDir ("" means the default).
func Path(stateDir string) string {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	return filepath.Join(stateDir, FileName)
}

// Write stores s at path atomically, readable by everyone (it holds no
// secret: sources are masked before they get here).
func Write(path string, s Status) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}

// ErrNone is returned by Read when no run has published progress.
var ErrNone = errors.New("no provisioning run has started")

// Read loads the document at path; ErrNone when there is none.
func Read(path string) (Status, error) {
	var s Status
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, ErrNone
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
