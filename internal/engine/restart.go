package engine

import (
	"context"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/runtime/restart"
)

// A container with a restart policy is watched by containerd's restart
// monitor, which starts its task again whenever it is not running and the
// container's status label says "running". The engine hands a container to
// the monitor only once its task runs, and takes it back before it stops
// the task itself, so that the monitor never races an upgrade.

// restartLabelPrefix is the prefix of the restart monitor's labels.
const restartLabelPrefix = "containerd.io/restart."

// superviseTask hands a running container to the restart monitor.
func (e *Engine) superviseTask(ctx context.Context, c containerd.Container, spec ContainerSpec) error {
	if spec.Restart == "" || spec.Restart == RestartNo {
		return nil
	}
	uri, err := e.logURI(c.ID(), spec.Log)
	if err != nil {
		return err
	}
	_, err = c.SetLabels(ctx, map[string]string{
		restart.StatusLabel: string(containerd.Running),
		restart.PolicyLabel: string(spec.Restart), // honoured by containerd 1.7+; 1.6 restarts on any exit
		restart.LogURILabel: uri.String(),
	})
	if err != nil {
		return fmt.Errorf("set restart policy: %w", err)
	}
	return nil
}

// unsuperviseTask takes a container back from the restart monitor before
// its task is stopped on purpose.
func (e *Engine) unsuperviseTask(ctx context.Context, c containerd.Container) error {
	labels, err := c.Labels(ctx)
	if err != nil {
		return fmt.Errorf("read labels: %w", err)
	}
	if _, ok := labels[restart.StatusLabel]; !ok {
		return nil
	}
	if _, err := c.SetLabels(ctx, map[string]string{restart.StatusLabel: string(containerd.Stopped)}); err != nil {
		return fmt.Errorf("clear restart policy: %w", err)
	}
	return nil
}
