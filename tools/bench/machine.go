package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// machine describes the host.
type machine struct {
	CPUs       int
	CPUModel   string
	MemTotal   string
	Kernel     string
	OS         string
	Containerd string
	Runc       string
	Terraform  string
	Go         string
	Disk       string
}

func machineInfo(ctx context.Context, b *bench) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	m.CPUModel = firstField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseInt(strings.Fields(firstField("/proc/meminfo", "MemTotal") + " 0")[0], 10, 64); err == nil {
		m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if v, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(v))
	}
	m.OS = strings.Trim(firstField("/etc/os-release", "PRETTY_NAME"), `"`)
	if v, err := b.client.Version(b.ctx); err == nil {
		m.Containerd = v.Version
	}
	if out, err := exec.CommandContext(ctx, "runc", "--version").Output(); err == nil {
		m.Runc = strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "runc version ")
	}
	if out, err := exec.CommandContext(ctx, b.cfg.terraform, "version").Output(); err == nil {
		m.Terraform = strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "Terraform ")
	}
	m.Disk = diskInfo("/var/lib/containerd")
	return m
}

// diskInfo describes the file system holding path: type, size, free space
// and the block device.
func diskInfo(path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "unknown"
	}
	size := float64(st.Blocks) * float64(st.Bsize) / (1 << 30)
	free := float64(st.Bavail) * float64(st.Bsize) / (1 << 30)
	dev, fstype := mountOf(path)
	rot := ""
	if dev != "" {
		name := filepath.Base(dev)
		if v, err := os.ReadFile("/sys/block/" + name + "/queue/rotational"); err == nil {
			if strings.TrimSpace(string(v)) == "0" {
				rot = ", non-rotational"
			} else {
				rot = ", rotational"
			}
		}
	}
	return fmt.Sprintf("%s on %s (%s%s), %.0f GiB, %.0f GiB free", path, dev, fstype, rot, size, free)
}

// mountOf returns the device and file system type of the mount holding path.
func mountOf(path string) (dev, fstype string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	best := ""
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) < 3 {
			continue
		}
		mp := fs[1]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, dev, fstype = mp, fs[0], fs[2]
		}
	}
	return dev, fstype
}

func firstField(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			k, v, ok = strings.Cut(s.Text(), "=")
		}
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAvg() string {
	v, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(v))[:3], " ")
}

// pidOfSocket finds the containerd process serving socket (0 if unknown).
func pidOfSocket(socket string) int {
	if v, err := os.ReadFile("/run/pouch/containerd.pid"); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(v))); err == nil {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				return pid
			}
		}
	}
	return 0
}

// otherActivity lists what else was running: other containerd daemons and
// Go test binaries (the machine may be shared).
func otherActivity(ours int) []string {
	entries, _ := os.ReadDir("/proc")
	counts := map[string]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == ours || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmd) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		base := filepath.Base(args[0])
		switch {
		case base == "containerd":
			counts["other containerd daemons"]++
		case strings.HasSuffix(base, ".test"):
			counts["Go test binaries"]++
		case base == "go" && len(args) > 1 && args[1] == "test":
			counts["`go test` runs"]++
		}
	}
	var out []string
	for k, n := range counts {
		out = append(out, fmt.Sprintf("%s: %d", k, n))
	}
	slices.Sort(out)
	return out
}

// cpuSample is the machine's busy and total CPU time, in clock ticks.
type cpuSample struct{ busy, total int64 }

func sampleCPU() cpuSample {
	f := strings.Fields(firstLine("/proc/stat"))
	var c cpuSample
	for i, v := range f {
		if i == 0 {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		c.total += n
		if i != 4 && i != 5 { // idle, iowait
			c.busy += n
		}
	}
	return c
}

// cpuSince is what all processes used of the machine's CPUs since s: the
// busy fraction, and the CPU time.
func cpuSince(s cpuSample) (float64, time.Duration) {
	now := sampleCPU()
	used := time.Duration(now.busy-s.busy) * time.Second / userHZ
	if now.total == s.total {
		return 0, used
	}
	return float64(now.busy-s.busy) / float64(now.total-s.total), used
}

func firstLine(file string) string {
	v, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(v), "\n")
	return line
}

// userHZ is the unit of /proc/stat's times on Linux: 1/100 s.
const userHZ = 100

// settle writes every dirty page on the machine out to disk (sync(2)), so
// that the writeback of what one measurement wrote (a pull, an unpack, a
// garbage collection of hundreds of MB) does not land in the next one.
func settle() {
	start := time.Now()
	unix.Sync()
	if d := time.Since(start); d > time.Second {
		logf("wrote dirty pages out in %s", d.Round(time.Millisecond))
	}
}
