package provisioner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Command is one program a phase runs: Argv, or Shell text run by
// /bin/sh -c (the reference's shell=True, so post_commands keep their
// POSIX sh meaning).
type Command struct {
	Argv  []string
	Shell string
	Dir   string
	// Env is added to the provisioner's own environment.
	Env []string
}

// String is the command as logged (callers mask it).
func (c Command) String() string {
	if c.Shell != "" {
		return c.Shell
	}
	return strings.Join(c.Argv, " ")
}

// Runner runs commands; onLine receives each line of output (stdout and
// stderr together, '\r' progress updates as lines of their own).
type Runner interface {
	Run(ctx context.Context, c Command, onLine func(string)) error
}

// ExitError is a command that ended with a non-zero status.
type ExitError struct {
	Command string
	Code    int
}

func (e *ExitError) Error() string { return fmt.Sprintf("exit %d: %s", e.Code, clip(e.Command, 200)) }

// ExecRunner runs commands with os/exec, each in a process group of its
// own: cancelling the context ends the whole group (SIGTERM, then SIGKILL
// after KillDelay), so children cannot keep the output pipe open.
type ExecRunner struct {
	// KillDelay is how long a cancelled group has between SIGTERM and
	// SIGKILL. Default: 10s
	KillDelay time.Duration
}

// drainDelay is how long output is read after the command exited.
const drainDelay = 2 * time.Second

// maxLine bounds one line of output kept; longer lines are cut.
const maxLine = 8 << 10

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, c Command, onLine func(string)) error {
	var cmd *exec.Cmd
	switch {
	case c.Shell != "":
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", c.Shell)
	case len(c.Argv) > 0:
		cmd = exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	default:
		return errors.New("empty command")
	}
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	delay := r.KillDelay
	if delay <= 0 {
		delay = 10 * time.Second
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = delay
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return err
	}
	pw.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		streamLines(pr, onLine)
	}()
	werr := cmd.Wait()
	// A program the command left running in the background (a daemon a
	// post_command starts) may hold the pipe: its output is read for a
	// moment more, then the phase goes on and leaves it running.
	select {
	case <-done:
	case <-time.After(drainDelay):
		pr.Close()
		<-done
	}
	pr.Close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		return &ExitError{Command: c.String(), Code: ee.ExitCode()}
	}
	return werr
}

// streamLines splits r on '\n' and '\r', dropping empty lines and
// cutting long ones, and hands each to onLine.
func streamLines(r interface{ Read([]byte) (int, error) }, onLine func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if len(data) >= maxLine {
			return len(data), data, nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t")
		if line == "" || onLine == nil {
			continue
		}
		if len(line) > maxLine {
			line = strings.ToValidUTF8(line[:maxLine], "") + "…"
		}
		onLine(line)
	}
}
