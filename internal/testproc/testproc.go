// Package testproc runs a program for a test the way the tests of this
// repository need: in its own process group (so that a child it starts
// cannot outlive it), its output collected where the test can read it while
// it runs, and stopped when the test ends — politely first, then with
// SIGKILL to the whole group — with the output printed if the test failed.
package testproc

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Buffer collects a process's output while tests read it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Options say how the process is stopped and named.
type Options struct {
	// Name labels the output printed when the test fails ("caddy").
	Name string
	// Stop is the polite signal sent when the test ends. Default: SIGTERM.
	Stop os.Signal
	// Grace is how long the process has to end after Stop before its
	// group gets SIGKILL. Default: 10s.
	Grace time.Duration
}

// Proc is a started process.
type Proc struct {
	Cmd  *exec.Cmd
	Out  *Buffer
	opts Options
	done chan struct{}
	err  error
}

// Start starts cmd (Stdout and Stderr go to Out) and arranges its stop at
// the end of the test.
func Start(t testing.TB, cmd *exec.Cmd, opts Options) *Proc {
	t.Helper()
	if opts.Stop == nil {
		opts.Stop = syscall.SIGTERM
	}
	if opts.Grace == 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.Name == "" {
		opts.Name = cmd.Path
	}
	p := &Proc{Cmd: cmd, Out: &Buffer{}, opts: opts, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", opts.Name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", opts.Name, p.Out.String())
		}
	})
	return p
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to end and reports whether it did.
func (p *Proc) Wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Err is the process's exit error, once it has ended.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Stop sends the polite signal, waits the grace period, then kills the
// whole process group. It returns once the process has ended.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(p.opts.Stop)
	if !p.Wait(p.opts.Grace) {
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
