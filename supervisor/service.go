package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/instanceportal/portal/confdecl"
)

// Process is one program as the portal reports it (GET /api/processes).
type Process struct {
	// Name is supervisord's process name; the skip marker and the log file
	// (<name>.log) are named after it.
	Name string `json:"name"`
	// Group is the process's group (the program's name, for a plain
	// [program:x] section).
	Group string `json:"group"`
	// ID is what the control calls accept: "group:name", or the name when
	// the program is its own group.
	ID string `json:"id"`
	// State is supervisord's state name: STOPPED, STARTING, RUNNING,
	// BACKOFF, STOPPING, EXITED, FATAL or UNKNOWN.
	State string `json:"state"`
	// Description is supervisord's own one-line summary.
	Description string `json:"description"`
	// PID is 0 when the program is not running.
	PID int `json:"pid"`
	// UptimeSeconds counts from the start of a RUNNING program; 0 otherwise.
	UptimeSeconds int64 `json:"uptime_seconds"`
	// StartedAt and StoppedAt are RFC 3339 times, when supervisord knows them.
	StartedAt string `json:"started_at,omitempty"`
	StoppedAt string `json:"stopped_at,omitempty"`
	// ExitStatus is the status of the last exit.
	ExitStatus int `json:"exit_status"`
	// SpawnError says why the last start failed, when it did.
	SpawnError string `json:"spawn_error,omitempty"`
	// Protected programs cannot be stopped or restarted from the portal;
	// ProtectedReason says why.
	Protected       bool   `json:"protected"`
	ProtectedReason string `json:"protected_reason,omitempty"`
	// Skipped is true when the skip marker exists: the program found its
	// app missing from portal.yaml and exited. App is the app's name as
	// the marker records it (empty if the marker holds none).
	Skipped bool   `json:"skipped"`
	App     string `json:"app,omitempty"`
}

// ErrNoSuchProcess is returned for a name supervisord does not manage.
var ErrNoSuchProcess = errors.New("no such program")

// ErrProtected is wrapped by a refusal to stop or restart a protected program.
var ErrProtected = errors.New("protected program")

// ErrStillChanging is wrapped when a start or stop did not finish within
// the wait bound; supervisord carries on with it.
var ErrStillChanging = errors.New("still changing state")

// Service lists and controls supervisord's programs.
type Service struct {
	cfg    Config
	client *Client
}

// New checks cfg, fills its defaults and returns a Service. It connects to
// nothing: supervisord may start later than the portal.
func New(cfg Config) (*Service, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	confdecl.FillDefaults(&cfg, Default())
	return &Service{cfg: cfg, client: newClient(cfg.Socket)}, nil
}

// Socket is the socket the service dials.
func (s *Service) Socket() string { return s.client.Socket() }

// Config is the service's configuration, defaults filled in.
func (s *Service) Config() Config { return s.cfg }

// List returns every program, in supervisord's order.
func (s *Service) List(ctx context.Context) ([]Process, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout.Std())
	defer cancel()
	infos, err := s.client.GetAllProcessInfo(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Process, len(infos))
	for i, info := range infos {
		out[i] = s.describe(info)
	}
	return out, nil
}

func (s *Service) describe(info ProcessInfo) Process {
	p := Process{
		Name: info.Name, Group: info.Group, ID: info.FullName(), State: info.State,
		Description: info.Description, PID: info.PID, ExitStatus: info.ExitStatus, SpawnError: info.SpawnErr,
	}
	if info.Start > 0 {
		p.StartedAt = time.Unix(info.Start, 0).UTC().Format(time.RFC3339)
	}
	if info.Stop > 0 {
		p.StoppedAt = time.Unix(info.Stop, 0).UTC().Format(time.RFC3339)
	}
	// supervisord's own clock, so a skew between the two does not matter.
	if info.State == "RUNNING" && info.Start > 0 && info.Now >= info.Start {
		p.UptimeSeconds = info.Now - info.Start
	}
	if reason := s.cfg.protectedReason(info.Name); reason != "" {
		p.Protected, p.ProtectedReason = true, reason
	}
	p.Skipped, p.App = s.SkipMarker(info.Name)
	return p
}

// maxMarkerBytes bounds what is read of a skip marker: an app's name.
const maxMarkerBytes = 256

// SkipMarker reports whether the skip marker of program name exists, and
// the app name it holds. The skip directory is world-writable (mode 1777),
// so the marker is opened through os.Root, which refuses a symbolic link
// leading out of the directory: the portal runs as root, and a planted link
// must not make it show another file's first line.
func (s *Service) SkipMarker(name string) (skipped bool, app string) {
	if !filepath.IsLocal(name) || strings.ContainsRune(name, '/') {
		return false, ""
	}
	root, err := os.OpenRoot(s.cfg.SkipDir)
	if err != nil {
		return false, ""
	}
	defer root.Close()
	fi, err := root.Lstat(name)
	if err != nil {
		return false, ""
	}
	if !fi.Mode().IsRegular() {
		return true, ""
	}
	f, err := root.Open(name)
	if err != nil {
		return true, ""
	}
	defer f.Close()
	buf, _ := io.ReadAll(io.LimitReader(f, maxMarkerBytes))
	return true, markerApp(buf)
}

// markerApp is the app name in a marker's content: its first line, trimmed,
// when that is printable UTF-8.
func markerApp(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if !utf8.ValidString(line) {
		return ""
	}
	for _, r := range line {
		if !unicode.IsPrint(r) {
			return ""
		}
	}
	return line
}

// Resolve finds the program called name: its process name, or the
// "group:name" form.
func (s *Service) Resolve(ctx context.Context, name string) (Process, error) {
	list, err := s.List(ctx)
	if err != nil {
		return Process{}, err
	}
	var found []Process
	for _, p := range list {
		if p.ID == name || p.Group+":"+p.Name == name {
			return p, nil
		}
		if p.Name == name {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Process{}, fmt.Errorf("%w %q", ErrNoSuchProcess, name)
	}
	return Process{}, fmt.Errorf("%w %q: several groups have one; use group:name", ErrNoSuchProcess, name)
}

// Start starts the program and waits until supervisord reports it RUNNING
// or failed. Starting a running program is supervisord's ALREADY_STARTED
// fault.
func (s *Service) Start(ctx context.Context, name string) (Process, error) {
	p, err := s.Resolve(ctx, name)
	if err != nil {
		return Process{}, err
	}
	return s.change(ctx, p, func(ctx context.Context) error {
		return s.client.StartProcess(ctx, p.ID, true)
	})
}

// resolveUnprotected resolves name for a call that may stop the program:
// a protected one is returned with ErrProtected.
func (s *Service) resolveUnprotected(ctx context.Context, name string) (Process, error) {
	p, err := s.Resolve(ctx, name)
	if err != nil {
		return Process{}, err
	}
	if p.Protected {
		return p, fmt.Errorf("%w: %s", ErrProtected, p.ProtectedReason)
	}
	return p, nil
}

// Stop stops the program, waiting until it has stopped. A protected
// program is refused with ErrProtected.
func (s *Service) Stop(ctx context.Context, name string) (Process, error) {
	p, err := s.resolveUnprotected(ctx, name)
	if err != nil {
		return p, err
	}
	return s.change(ctx, p, func(ctx context.Context) error {
		return s.client.StopProcess(ctx, p.ID, true)
	})
}

// Restart stops the program when it runs (or is starting, or backing off)
// and starts it again, waiting for both. A protected program is refused
// with ErrProtected.
func (s *Service) Restart(ctx context.Context, name string) (Process, error) {
	p, err := s.resolveUnprotected(ctx, name)
	if err != nil {
		return p, err
	}
	return s.change(ctx, p, func(ctx context.Context) error {
		switch p.State {
		case "RUNNING", "STARTING", "BACKOFF":
			err := s.client.StopProcess(ctx, p.ID, true)
			var fault *Fault
			// It may have stopped on its own since it was listed.
			if err != nil && !(errors.As(err, &fault) && fault.Code == FaultNotRunning) {
				return err
			}
		}
		return s.client.StartProcess(ctx, p.ID, true)
	})
}

// change runs one waiting call under WaitTimeout and returns the program
// as it is afterwards. When the bound passes first, the error wraps
// ErrStillChanging and the program is described as it is at that moment.
func (s *Service) change(ctx context.Context, p Process, do func(context.Context) error) (Process, error) {
	waitCtx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout.Std())
	err := do(waitCtx)
	timedOut := waitCtx.Err() == context.DeadlineExceeded && ctx.Err() == nil
	cancel()
	if timedOut {
		err = fmt.Errorf("%w: %s after %v; supervisord carries on", ErrStillChanging, p.ID, s.cfg.WaitTimeout.Std())
	}
	// Describe the outcome, fault or not, with a fresh bound: the page
	// shows the state the call left.
	infoCtx, cancelInfo := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.CallTimeout.Std())
	defer cancelInfo()
	if info, infoErr := s.client.GetProcessInfo(infoCtx, p.ID); infoErr == nil {
		p = s.describe(info)
	}
	return p, err
}
