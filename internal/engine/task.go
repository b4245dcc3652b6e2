package engine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/moby/sys/signal"

	"github.com/pouch/terraform-provider-pouch/internal/containerlog"
)

// taskStatus returns the status of container id's task, in one request;
// StatusCreated when it has none.
func taskStatus(ctx context.Context, client *containerd.Client, id string) (Status, error) {
	st, _, err := taskState(ctx, client, id)
	return st, err
}

// taskState returns the status of container id's task and, once it has
// stopped, its exit code, in one request; StatusCreated when it has none.
func taskState(ctx context.Context, client *containerd.Client, id string) (Status, uint32, error) {
	resp, err := client.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: id})
	if err != nil {
		if err = errgrpc.ToNative(err); errdefs.IsNotFound(err) {
			return StatusCreated, 0, nil
		}
		return StatusUnknown, 0, fmt.Errorf("task status of %s: %w", id, err)
	}
	st, code := processState(resp.Process)
	return st, code, nil
}

// taskStates returns the status and exit code of every task of the
// namespace, by container, in one request.
func taskStates(ctx context.Context, client *containerd.Client) (map[string]taskExit, error) {
	resp, err := client.TaskService().List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
	}
	out := make(map[string]taskExit, len(resp.Tasks))
	for _, p := range resp.Tasks {
		st, code := processState(p)
		out[p.GetID()] = taskExit{st, code}
	}
	return out, nil
}

// taskExit is a task's status and, once it stopped, its exit code.
type taskExit struct {
	status Status
	code   uint32
}

// processState reads a task's process: its status and, once it stopped,
// its exit code.
func processState(p *tasktypes.Process) (Status, uint32) {
	switch p.GetStatus() {
	case tasktypes.Status_RUNNING:
		return StatusRunning, 0
	case tasktypes.Status_STOPPED:
		return StatusStopped, p.GetExitStatus()
	case tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
		return StatusPaused, 0
	case tasktypes.Status_CREATED:
		return StatusCreated, 0
	}
	return StatusUnknown, 0
}

// startTask creates and starts the container's task, its output appended to
// the container's log through the log driver (which rotates it as spec.Log
// says), and hands it to the restart monitor when spec has a restart
// policy.
func (e *Engine) startTask(ctx context.Context, c containerd.Container, spec ContainerSpec) error {
	if err := e.host.MkdirAll(e.containerDir(c.ID()), 0o700); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	uri, err := e.logURI(c.ID(), spec.Log)
	if err != nil {
		return err
	}
	task, err := c.NewTask(ctx, cio.LogURI(uri))
	if err != nil {
		return taskCreateError(err, spec)
	}
	if err := task.Start(ctx); err != nil {
		if _, derr := task.Delete(ctx, containerd.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
			err = errors.Join(err, fmt.Errorf("delete failed task: %w", derr))
		}
		return fmt.Errorf("start task: %w", err)
	}
	e.log.Debug(ctx, "task started", map[string]any{"container": c.ID(), "pid": task.Pid()})
	return e.superviseTask(ctx, c, spec)
}

// taskCreateError explains the runtime's refusals that a setting causes.
func taskCreateError(err error, spec ContainerSpec) error {
	msg := err.Error()
	if len(spec.Ulimits) > 0 && strings.Contains(msg, "error setting rlimit") {
		return fmt.Errorf("%w: ulimits: the runtime could not set a limit: a hard limit above containerd's own needs "+
			"CAP_SYS_RESOURCE, which containerd does not have here: ask for at most containerd's limits (see "+
			"/proc/$(pidof containerd)/limits), or raise them (LimitNOFILE=, LimitMEMLOCK= in its systemd unit) (%w)",
			ErrInvalidSpec, err)
	}
	if len(spec.Sysctls) > 0 && strings.Contains(msg, "sysctl") {
		return fmt.Errorf("%w: sysctls: the runtime refused one: check its name and value (%w)", ErrInvalidSpec, err)
	}
	return fmt.Errorf("create task: %w", err)
}

// logURI is the log URI of container id's tasks: the log driver (the
// provider's own binary, installed under the data root, where it stays
// when the provider is upgraded or its .terraform directory deleted)
// writing to the container's log file.
func (e *Engine) logURI(id string, opts LogOptions) (*url.URL, error) {
	driver, err := e.logDriver()
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	uri, err := containerlog.URI(driver, containerlog.Config{Path: e.logPath(id), MaxSizeMiB: opts.MaxSizeMiB, MaxFiles: opts.MaxFiles})
	if err != nil {
		return nil, fmt.Errorf("log driver: %w", err)
	}
	return uri, nil
}

// logDriver installs the log driver into the data root on first use.
func (e *Engine) logDriver() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.driver != "" {
		return e.driver, nil
	}
	path, err := e.host.InstallLogDriver(filepath.Join(e.opts.DataRoot, binDir))
	if err != nil {
		return "", fmt.Errorf("install the log driver: %w", err)
	}
	e.driver = path
	return path, nil
}

// killTask stops the container's task, if any, at once, and deletes it.
func (e *Engine) killTask(ctx context.Context, c containerd.Container) error {
	return e.stopTask(ctx, c, ContainerSpec{})
}

// stopTask stops the container's task, if any, and deletes it: the stop
// signal of spec (SIGTERM by default), then SIGKILL after its stop timeout.
// When PID 1 does not handle the stop signal (as a shell or sleep does not),
// SIGKILL is sent at once: waiting could only time out. A paused task is
// resumed first so that it can receive the signal.
func (e *Engine) stopTask(ctx context.Context, c containerd.Container, spec ContainerSpec) error {
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	st, err := task.Status(ctx)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("task status: %w", err)
	}
	if st.Status == containerd.Paused || st.Status == containerd.Pausing {
		if err := task.Resume(ctx); err != nil {
			return fmt.Errorf("resume paused task: %w", err)
		}
		st.Status = containerd.Running
	}
	if st.Status == containerd.Running {
		exited, err := task.Wait(ctx)
		if err != nil {
			return fmt.Errorf("wait for task: %w", err)
		}
		signal, err := stopSignal(spec)
		if err != nil {
			return err
		}
		timeout := spec.StopTimeout
		// An init forwards the signal to the service (tini waits for its
		// signals without a handler, so its masks do not say so).
		if timeout <= 0 || !spec.Init && !e.host.HandlesSignal(task.Pid(), signal) {
			signal = syscall.SIGKILL
		}
		e.log.Debug(ctx, "stopping task", map[string]any{"container": c.ID(), "signal": signal.String()})
		if err := task.Kill(ctx, signal); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("signal task: %w", err)
		}
		if signal != syscall.SIGKILL {
			select {
			case <-exited:
			case <-time.After(timeout):
				e.log.Info(ctx, "task did not stop in time, killing it", map[string]any{"container": c.ID(), "timeout": timeout.String()})
				if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
					return fmt.Errorf("kill task: %w", err)
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// A task seen to exit, or found stopped, is deleted as it is: killing it
	// first (WithProcessKill) would cost a wait request and a `runc kill
	// --all` for nothing, about 40 ms of CPU per stop. Any other state (a
	// task created but never started, a status not read) is killed first.
	var opts []containerd.ProcessDeleteOpts
	if st.Status != containerd.Running && st.Status != containerd.Stopped {
		opts = append(opts, containerd.WithProcessKill)
	}
	if _, err := task.Delete(ctx, opts...); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task: %w", err)
	}
	return nil
}

// stopSignal is the signal that asks spec's process to stop.
func stopSignal(spec ContainerSpec) (syscall.Signal, error) {
	if spec.StopSignal == "" {
		return syscall.SIGTERM, nil
	}
	sig, err := signal.ParseSignal(spec.StopSignal)
	if err != nil {
		return 0, fmt.Errorf("%w: stop_signal %q: %v", ErrInvalidSpec, spec.StopSignal, err)
	}
	return sig, nil
}

// pauseTask pauses the container's task.
func (e *Engine) pauseTask(ctx context.Context, c containerd.Container) error {
	task, err := c.Task(ctx, nil)
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	if err := task.Pause(ctx); err != nil {
		return fmt.Errorf("pause task: %w", err)
	}
	return nil
}
