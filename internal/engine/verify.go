package engine

import (
	"context"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
)

// Health check defaults, as Docker's.
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
)

// How much of a container's log an error quotes.
const (
	logTailLines = 10
	logTailBytes = 2048
)

// verifyTask runs the Verify phase of a task started at started: the
// health check, then the rest of the start window. Each fails with the
// reason a user can act on.
func (e *Engine) verifyTask(ctx context.Context, c containerd.Container, spec ContainerSpec, started time.Time) error {
	if hc := spec.Healthcheck; hc != nil {
		task, err := c.Task(ctx, nil)
		if err != nil {
			return fmt.Errorf("load task: %w", err)
		}
		exited, err := task.Wait(ctx)
		if err != nil {
			return fmt.Errorf("watch task: %w", err)
		}
		e.log.Info(ctx, "upgrade: waiting for the health check", map[string]any{"container": c.ID()})
		if err := e.waitHealthy(ctx, c, task, hc, exited); err != nil {
			return err
		}
	}
	return e.watchStart(ctx, c, spec, started)
}

// watchStart waits out the start window of a task that started at
// started: until spec.Upgrade.VerifySeconds after that. A task that exits
// within it fails the change, with its exit code and the end of its log.
// A window of zero (a one-shot container) watches nothing.
func (e *Engine) watchStart(ctx context.Context, c containerd.Container, spec ContainerSpec, started time.Time) error {
	n := spec.Upgrade.VerifySeconds
	if n <= 0 || !spec.Running {
		return nil
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	// Wait answers at once for a task that has exited already.
	exited, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("watch task: %w", err)
	}
	e.log.Debug(ctx, "watching the new task's start", map[string]any{"container": c.ID(), "seconds": n})
	timer := time.NewTimer(time.Until(started.Add(time.Duration(n) * time.Second)))
	defer timer.Stop()
	select {
	case st := <-exited:
		return e.exitedEarly(ctx, c, st.ExitCode(), fmt.Sprintf("within %d s of its start (upgrade.verify_seconds)", n))
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exitedEarly is the error of a task that exited when it should have kept
// running. It deletes the task first, which makes its log driver write out
// everything the process printed, then quotes the end of the log.
func (e *Engine) exitedEarly(ctx context.Context, c containerd.Container, code uint32, when string) error {
	ctx = context.WithoutCancel(ctx)
	if err := e.unsuperviseTask(ctx, c); err != nil {
		e.log.Info(ctx, "could not take the exited task from the restart monitor", map[string]any{"container": c.ID(), "error": err.Error()})
	}
	if err := e.killTask(ctx, c); err != nil {
		e.log.Info(ctx, "could not delete the exited task", map[string]any{"container": c.ID(), "error": err.Error()})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the process of container %s exited with code %d %s", c.ID(), code, when)
	tail, err := e.host.LogTail(e.logPath(c.ID()), logTailLines, logTailBytes)
	switch {
	case err != nil:
		fmt.Fprintf(&b, "; its log cannot be read (%v)", err)
	case strings.TrimSpace(tail) == "":
		b.WriteString("; it wrote nothing to its log")
	default:
		b.WriteString("; the end of its log:\n")
		for _, line := range strings.Split(strings.TrimRight(tail, "\n"), "\n") {
			b.WriteString("    " + line + "\n")
		}
	}
	b.WriteString("\nFix the image or the container's command and settings; for a container whose process is " +
		"meant to exit (a one-shot job), set upgrade.verify_seconds = 0")
	return fmt.Errorf("%s", b.String())
}

// waitHealthy runs the health check until it passes or its retries are
// spent.
func (e *Engine) waitHealthy(ctx context.Context, c containerd.Container, task containerd.Task, hc *Healthcheck, exited <-chan containerd.ExitStatus) error {
	interval, timeout, retries := hc.Interval, hc.Timeout, hc.Retries
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	if timeout <= 0 {
		timeout = DefaultHealthTimeout
	}
	if retries <= 0 {
		retries = DefaultHealthRetries
	}
	wait := func(d time.Duration) error {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case st := <-exited:
			return e.exitedEarly(ctx, c, st.ExitCode(), "before it was healthy")
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := wait(hc.StartPeriod); err != nil {
		return err
	}
	var last error
	for attempt := 1; attempt <= retries; attempt++ {
		if last = e.execCheck(ctx, task, hc.Command, timeout); last == nil {
			return nil
		}
		e.log.Debug(ctx, "health check failed", map[string]any{"attempt": attempt, "error": last.Error()})
		if attempt < retries {
			if err := wait(interval); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("health check failed %d times: %w; run the command in the container to see its output", retries, last)
}

// execCheck runs one health check command in the task. Its errors name
// the command by its first word only, and its output is discarded: the
// arguments and what the command prints may hold secrets (a password on a
// command line, a token in a response), and an error or a log line would
// carry them into Terraform's output.
func (e *Engine) execCheck(ctx context.Context, task containerd.Task, command []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	spec, err := task.Spec(ctx)
	if err != nil {
		return err
	}
	pspec := *spec.Process
	pspec.Args = command
	pspec.Terminal = false
	name := fmt.Sprintf("%q", command[0])
	execID := "health-" + randomSuffix()
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, io.Discard, io.Discard)))
	if err != nil {
		return fmt.Errorf("exec %s: %w", name, err)
	}
	defer proc.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	status, err := proc.Wait(ctx)
	if err != nil {
		return err
	}
	if err := proc.Start(ctx); err != nil {
		return fmt.Errorf("exec %s: %w", name, err)
	}
	select {
	case st := <-status:
		if st.ExitCode() != 0 {
			return fmt.Errorf("%s exited with code %d", name, st.ExitCode())
		}
		return nil
	case <-ctx.Done():
		_ = proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		return fmt.Errorf("%s did not answer within %s", name, timeout)
	}
}
