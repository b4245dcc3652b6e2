package sshd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pouch/terraform-provider-pouch/internal/childproc"
)

// Sessions lists the pids of the sshd processes serving the server's
// sessions (not the listener): one per connection, the listener's children
// (with privilege separation, each has an unprivileged child while it
// authenticates; a root login has no further one). Nil once the sshd is
// gone.
func (s *Server) Sessions() []int { return s.children(false) }

// children lists the listener's children, the exited ones not yet reaped
// too with zombies.
func (s *Server) children(zombies bool) []int {
	if s.cmd == nil || s.cmd.Process == nil || childproc.Exited(s.exited) {
		return nil
	}
	listener := s.cmd.Process.Pid
	var pids []int
	for _, p := range procStats() {
		if p.ppid == listener && (zombies || p.state != 'Z' && p.state != 'X') {
			pids = append(pids, p.pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// KillSessions SIGKILLs the sshd processes of every session, as a dropped
// connection or a dead Terraform Cloud runner would, and waits (with a
// deadline) until they are gone. The processes the sessions started (the
// agent) are NOT killed; the listener keeps accepting connections.
func (s *Server) KillSessions() error {
	return killSessions(s.Sessions(), killTimeout)
}

// killSessions SIGKILLs the processes of the sshd sessions whose leaders
// (the per-connection monitors: sshd setsid()s each) are given, i.e. the
// monitors and their children still in their session. A command a session
// runs is in a session of its own (sshd setsid()s it too), so it lives on.
func killSessions(leaders []int, timeout time.Duration) error {
	if len(leaders) == 0 {
		return nil
	}
	members := func() []int {
		var pids []int
		for _, p := range procStats() {
			if (slices.Contains(leaders, p.sid) || slices.Contains(leaders, p.pid)) && p.state != 'Z' && p.state != 'X' {
				pids = append(pids, p.pid)
			}
		}
		return pids
	}
	deadline := time.Now().Add(timeout)
	for {
		left := members()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd session processes %v still there after %v", left, timeout)
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // polling for exit, bounded by deadline
	}
}

// Started returns the pids of the processes that the server's sessions
// started and that run now (an agent, and what it started): those whose
// environment has EnvVar set to the server's Dir.
func (s *Server) Started() []int { return Marked(s.Dir) }

// KillStarted SIGKILLs the processes Started lists and waits until they are
// gone, for at most timeout.
func (s *Server) KillStarted(timeout time.Duration) error { return KillMarked(s.Dir, timeout) }

// Marked returns the pids of the processes started in the sessions of the
// server of dir, which may be gone (their environment has EnvVar=dir), this
// process aside. Zombies have no environment and are not listed.
func Marked(dir string) []int {
	if dir == "" {
		return nil
	}
	marker := EnvVar + "=" + dir
	self := os.Getpid()
	var pids []int
	for _, p := range procStats() {
		if p.pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid), "environ"))
		if err == nil && slices.Contains(strings.Split(string(env), "\x00"), marker) {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// KillMarked SIGKILLs the processes Marked(dir) lists and waits until they
// are gone, for at most timeout.
func KillMarked(dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := Marked(dir)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of the sessions of %s still there after %v: %v", dir, timeout, left)
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // polling for exit, bounded by deadline
	}
}

type procStat struct {
	pid, ppid, sid int
	state          byte
}

// procStats reads pid, state, ppid and session of every process from
// /proc/PID/stat.
func procStats() []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp session ...": comm may hold anything.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 4 || len(f[0]) != 1 {
			continue
		}
		ppid, err1 := strconv.Atoi(f[1])
		sid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, procStat{pid: pid, ppid: ppid, sid: sid, state: f[0][0]})
	}
	return out
}
