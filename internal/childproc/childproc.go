// Package childproc starts and stops the helper daemons of the tests and the
// benchmarks (containerd, docker-registry): each in its own process group,
// killed with its parent.
package childproc

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Start starts cmd in a process group of its own that is killed when this
// process dies (Pdeathsig), and returns a channel closed when cmd has
// exited.
//
// cmd is started from an OS thread kept until cmd exits: Pdeathsig fires
// when the thread that started a child exits, not the process, and code
// under test ends threads on purpose (containerd's netns package does, to
// leave a network namespace behind). Started from such a thread, the daemon
// would be killed mid-test.
func Start(cmd *exec.Cmd) (<-chan struct{}, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		err := cmd.Start()
		started <- err
		if err == nil {
			_ = cmd.Wait()
			close(exited)
		}
	}()
	return exited, <-started
}

// Stop sends SIGTERM to cmd's process group and waits for cmd to exit,
// sending SIGKILL after grace. exited is the channel Start returned; with
// nil, Stop waits for cmd itself.
func Stop(cmd *exec.Cmd, exited <-chan struct{}, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	if exited == nil {
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		exited = done
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-exited
}

// Exited tells whether exited (from Start) is closed.
func Exited(exited <-chan struct{}) bool {
	select {
	case <-exited:
		return true
	default:
		return false
	}
}

// LogTail returns the last n lines of the log file at path, for an error
// message about the process that wrote it.
func LogTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
