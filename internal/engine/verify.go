package engine

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
)

// Health check defaults, as Docker's.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
)

// verifyTask runs the Verify phase: the health check, then the
// verify_seconds watch. Each fails with the reason a user can act on.
func (e *Engine) verifyTask(ctx context.Context, c containerd.Container, spec ContainerSpec) error {
	task, err := c.Task(ctx, nil)
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("watch task: %w", err)
	}
	if hc := spec.Healthcheck; hc != nil {
		e.log.Info(ctx, "upgrade: waiting for the health check", map[string]any{"container": c.ID()})
		if err := e.waitHealthy(ctx, task, hc, exited); err != nil {
			return err
		}
	}
	if n := spec.Upgrade.VerifySeconds; n > 0 {
		e.log.Info(ctx, "upgrade: watching the new task", map[string]any{"container": c.ID(), "seconds": n})
		select {
		case st := <-exited:
			return fmt.Errorf("the new task exited with code %d within verify_seconds (%d s)", st.ExitCode(), n)
		case <-time.After(time.Duration(n) * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// waitHealthy runs the health check until it passes or its retries are
// spent.
func (e *Engine) waitHealthy(ctx context.Context, task containerd.Task, hc *Healthcheck, exited <-chan containerd.ExitStatus) error {
	interval, timeout, retries := hc.Interval, hc.Timeout, hc.Retries
	if interval <= 0 {
		interval = defaultHealthInterval
	}
	if timeout <= 0 {
		timeout = defaultHealthTimeout
	}
	if retries <= 0 {
		retries = defaultHealthRetries
	}
	wait := func(d time.Duration) error {
		select {
		case st := <-exited:
			return fmt.Errorf("the new task exited with code %d before it was healthy", st.ExitCode())
		case <-time.After(d):
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
	return fmt.Errorf("health check failed %d times: %w", retries, last)
}

// execCheck runs one health check command in the task.
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
	var stdout, stderr bytes.Buffer
	execID := "health-" + randomSuffix()
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr)))
	if err != nil {
		return fmt.Errorf("exec %q: %w", strings.Join(command, " "), err)
	}
	defer proc.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	status, err := proc.Wait(ctx)
	if err != nil {
		return err
	}
	if err := proc.Start(ctx); err != nil {
		return fmt.Errorf("exec %q: %w", strings.Join(command, " "), err)
	}
	select {
	case st := <-status:
		if st.ExitCode() != 0 {
			return fmt.Errorf("%q exited with code %d: %s", strings.Join(command, " "), st.ExitCode(), strings.TrimSpace(stderr.String()))
		}
		return nil
	case <-ctx.Done():
		_ = proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		return fmt.Errorf("%q did not answer within %s", strings.Join(command, " "), timeout)
	}
}
