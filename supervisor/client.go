package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// ErrNotRunning means nothing answers on supervisord's socket: the file is
// missing, or nobody listens on it.
var ErrNotRunning = errors.New("supervisord is not running")

// maxResponseBytes bounds an answer. getAllProcessInfo costs about 700
// bytes per program, so this allows thousands.
const maxResponseBytes = 4 << 20

// Client calls supervisord's XML-RPC interface over its unix socket. Each
// call opens its own connection: supervisord's HTTP server is a small
// single-threaded one, and a unix socket costs next to nothing to dial.
type Client struct {
	socket string
	http   *http.Client
}

// newClient returns a client for the unix socket at path. It dials nothing
// until the first call.
func newClient(path string) *Client {
	dialer := &net.Dialer{}
	return &Client{
		socket: path,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, "unix", path)
			},
			DisableKeepAlives:  true,
			DisableCompression: true,
			// Each call's context bounds it; the transport adds no
			// timeout of its own.
			MaxResponseHeaderBytes: 64 << 10,
		}},
	}
}

// Socket is the socket path the client dials.
func (c *Client) Socket() string { return c.socket }

// Call invokes method with params (string, bool or int) and returns the
// decoded answer, a *Fault, ErrNotRunning (wrapped), or another error.
func (c *Client) Call(ctx context.Context, method string, params ...any) (any, error) {
	body, err := encodeCall(method, params...)
	if err != nil {
		return nil, err
	}
	// The host is ignored (the transport always dials the socket), but
	// supervisord's server wants a well-formed request line and Host.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost/RPC2", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (socket %s)", ErrNotRunning, c.socket)
		}
		return nil, fmt.Errorf("calling supervisord %s: %w", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("calling supervisord %s: HTTP %s", method, resp.Status)
	}
	v, err := parseResponse(io.LimitReader(resp.Body, maxResponseBytes))
	var fault *Fault
	if err != nil && !errors.As(err, &fault) {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("calling supervisord %s: %w", method, ctx.Err())
		}
		return nil, fmt.Errorf("calling supervisord %s: %w", method, err)
	}
	return v, err
}

// ProcessInfo is one program as supervisord's getProcessInfo describes it.
type ProcessInfo struct {
	Name  string
	Group string
	// State is supervisord's state name: STOPPED, STARTING, RUNNING,
	// BACKOFF, STOPPING, EXITED, FATAL or UNKNOWN.
	State string
	// Description is supervisord's one-line summary ("pid 42, uptime
	// 0:01:02", "Exited too quickly (process log may have details)").
	Description string
	PID         int
	// Start, Stop and Now are Unix seconds from supervisord's clock.
	Start, Stop, Now int64
	ExitStatus       int
	SpawnErr         string
}

// FullName is the name supervisord's calls accept for the process:
// "group:name", or just the name when the program is its own group.
func (p ProcessInfo) FullName() string {
	if p.Group == "" || p.Group == p.Name {
		return p.Name
	}
	return p.Group + ":" + p.Name
}

// processFromValue converts one getProcessInfo struct. Missing fields are
// zero; a field of the wrong type is an error naming it.
func processFromValue(v any) (ProcessInfo, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return ProcessInfo{}, fmt.Errorf("process info: want a struct, got %s", typeName(v))
	}
	var (
		p    ProcessInfo
		errs []error
	)
	str := func(key string) string {
		switch s := m[key].(type) {
		case string:
			return s
		case nil:
			return ""
		default:
			errs = append(errs, fmt.Errorf("%s: want a string, got %s", key, typeName(s)))
			return ""
		}
	}
	num := func(key string) int64 {
		switch n := m[key].(type) {
		case int64:
			return n
		case nil:
			return 0
		default:
			errs = append(errs, fmt.Errorf("%s: want an int, got %s", key, typeName(n)))
			return 0
		}
	}
	p.Name = str("name")
	p.Group = str("group")
	p.State = str("statename")
	p.Description = str("description")
	p.PID = int(num("pid"))
	p.Start, p.Stop, p.Now = num("start"), num("stop"), num("now")
	p.ExitStatus = int(num("exitstatus"))
	p.SpawnErr = str("spawnerr")
	if p.Name == "" && len(errs) == 0 {
		errs = append(errs, errors.New("name: missing"))
	}
	if len(errs) > 0 {
		return ProcessInfo{}, fmt.Errorf("process info %q: %w", p.Name, errors.Join(errs...))
	}
	return p, nil
}

// GetAllProcessInfo lists every process supervisord manages, in its order.
func (c *Client) GetAllProcessInfo(ctx context.Context) ([]ProcessInfo, error) {
	v, err := c.Call(ctx, "supervisor.getAllProcessInfo")
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("supervisor.getAllProcessInfo: want an array, got %s", typeName(v))
	}
	out := make([]ProcessInfo, 0, len(list))
	for _, item := range list {
		p, err := processFromValue(item)
		if err != nil {
			return nil, fmt.Errorf("supervisor.getAllProcessInfo: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// GetProcessInfo describes one process ("name" or "group:name").
func (c *Client) GetProcessInfo(ctx context.Context, name string) (ProcessInfo, error) {
	v, err := c.Call(ctx, "supervisor.getProcessInfo", name)
	if err != nil {
		return ProcessInfo{}, err
	}
	p, err := processFromValue(v)
	if err != nil {
		return ProcessInfo{}, fmt.Errorf("supervisor.getProcessInfo: %w", err)
	}
	return p, nil
}

// StartProcess starts a process. With wait, supervisord answers once the
// process is RUNNING (it stayed up for its startsecs) or failed to; ctx
// bounds the wait.
func (c *Client) StartProcess(ctx context.Context, name string, wait bool) error {
	return c.boolCall(ctx, "supervisor.startProcess", name, wait)
}

// StopProcess stops a process. With wait, supervisord answers once it has
// stopped (after SIGKILL at the program's stopwaitsecs, at worst); ctx
// bounds the wait.
func (c *Client) StopProcess(ctx context.Context, name string, wait bool) error {
	return c.boolCall(ctx, "supervisor.stopProcess", name, wait)
}

func (c *Client) boolCall(ctx context.Context, method, name string, wait bool) error {
	v, err := c.Call(ctx, method, name, wait)
	if err != nil {
		return err
	}
	if ok, isBool := v.(bool); !isBool || !ok {
		return fmt.Errorf("%s %q: supervisord answered %v, want true", method, name, v)
	}
	return nil
}
