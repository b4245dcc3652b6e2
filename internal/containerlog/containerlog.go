// Package containerlog writes containers' stdout and stderr to plain text
// log files that rotate by size.
//
// containerd's shim runs a logging binary per task when the task's log URI
// has the binary:// scheme; pouch uses its own executable for that. URI
// builds such a URI for a Config, ServeIfLogger (called first thing in main)
// turns the process into the logger when the shim started it that way, and
// Install makes the stable copy of the executable the URI should point at.
// Tail reads the end of a log, safe to show on a terminal.
//
// The log is the file Config.Path plus at most MaxFiles-1 rotated files next
// to it, named the way lumberjack names them: for container.log,
// container-2006-01-02T15-04-05.000.log (UTC). It holds complete lines only:
// the lines of stdout and stderr, unprefixed, each written whole; a line
// longer than 256 KiB is split into several, and a final line without a
// newline gets one.
package containerlog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"
	"gopkg.in/natefinch/lumberjack.v2"
)

// Config is how one container's log is written.
type Config struct {
	// Path is the absolute path of the current log file, e.g.
	// /var/lib/pouch/containers/<ns>/<id>/container.log.
	Path string
	// MaxSizeMiB is the size in MiB a file may not grow past; the logger
	// rotates before a line would make it bigger. 0 means DefaultMaxSizeMiB.
	MaxSizeMiB int
	// MaxFiles is how many files are kept in all, the current one
	// included; 1 keeps no rotated file. 0 means DefaultMaxFiles.
	MaxFiles int
}

// Defaults, the same as Docker's "local" log driver.
const (
	// DefaultMaxSizeMiB is the default Config.MaxSizeMiB.
	DefaultMaxSizeMiB = 20
	// DefaultMaxFiles is the default Config.MaxFiles.
	DefaultMaxFiles = 5
)

const (
	// markerKey (with the value protocolVersion) in the URI's query marks
	// the process as a logger started by a shim.
	markerKey       = "pouch-logger"
	protocolVersion = "1"
	keyPath         = "path"
	keyMaxSize      = "max-size"
	keyMaxFiles     = "max-files"

	maxSizeLimit = 1 << 20   // MiB, i.e. 1 TiB
	maxFilesMax  = 1000      // files
	maxLine      = 256 << 10 // longer lines are split

	// backupTimeFormat is the timestamp lumberjack puts into rotated files' names.
	backupTimeFormat = "2006-01-02T15-04-05.000"
)

// drainTimeout bounds how long the logger keeps reading after SIGTERM for
// output that is still in the pipes (the shim closes its ends before it
// signals, so EOF normally comes at once). The shim kills the logger 12 s
// after SIGTERM.
var drainTimeout = 5 * time.Second

func (c Config) withDefaults() Config {
	if c.MaxSizeMiB == 0 {
		c.MaxSizeMiB = DefaultMaxSizeMiB
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultMaxFiles
	}
	return c
}

func (c Config) validate() error {
	if !filepath.IsAbs(c.Path) || strings.ContainsRune(c.Path, 0) {
		return fmt.Errorf("log path %q is not an absolute path", c.Path)
	}
	if c.MaxSizeMiB < 1 || c.MaxSizeMiB > maxSizeLimit {
		return fmt.Errorf("log max size %d MiB is not between 1 and %d", c.MaxSizeMiB, maxSizeLimit)
	}
	if c.MaxFiles < 1 || c.MaxFiles > maxFilesMax {
		return fmt.Errorf("log max files %d is not between 1 and %d", c.MaxFiles, maxFilesMax)
	}
	return nil
}

// URI returns the binary:// log URI that makes containerd's shim run binary
// (an absolute path, normally the one Install returned) as this container's
// logger with cfg. Pass it to cio.LogURI, and its String() as the restart
// monitor's log URI label. Zero MaxSizeMiB and MaxFiles mean the defaults.
func URI(binary string, cfg Config) (*url.URL, error) {
	if !filepath.IsAbs(binary) || strings.ContainsRune(binary, 0) {
		return nil, fmt.Errorf("logger binary %q is not an absolute path", binary)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set(markerKey, protocolVersion)
	q.Set(keyPath, cfg.Path)
	q.Set(keyMaxSize, strconv.Itoa(cfg.MaxSizeMiB))
	q.Set(keyMaxFiles, strconv.Itoa(cfg.MaxFiles))
	return &url.URL{Scheme: "binary", Path: binary, RawQuery: q.Encode()}, nil
}

// isLogger reports whether args (os.Args[1:]) carry the marker of a URI.
func isLogger(args []string) bool {
	return slices.Contains(args, markerKey)
}

// parseArgs parses the arguments the shim made of a URI's query: key value
// pairs in any order.
func parseArgs(args []string) (Config, error) {
	if len(args)%2 != 0 {
		return Config{}, fmt.Errorf("want key value pairs, got %d arguments %q", len(args), args)
	}
	vals := map[string]string{}
	for i := 0; i < len(args); i += 2 {
		k, v := args[i], args[i+1]
		switch k {
		case markerKey, keyPath, keyMaxSize, keyMaxFiles:
		default:
			return Config{}, fmt.Errorf("unknown argument %q", k)
		}
		if _, dup := vals[k]; dup {
			return Config{}, fmt.Errorf("argument %q given twice", k)
		}
		vals[k] = v
	}
	if v := vals[markerKey]; v != protocolVersion {
		return Config{}, fmt.Errorf("logger protocol version %q, this binary speaks %q", v, protocolVersion)
	}
	for _, k := range []string{keyPath, keyMaxSize, keyMaxFiles} {
		if _, ok := vals[k]; !ok {
			return Config{}, fmt.Errorf("argument %q missing", k)
		}
	}
	cfg := Config{Path: vals[keyPath]}
	var err error
	if cfg.MaxSizeMiB, err = strconv.Atoi(vals[keyMaxSize]); err != nil {
		return Config{}, fmt.Errorf("argument %s: %w", keyMaxSize, err)
	}
	if cfg.MaxFiles, err = strconv.Atoi(vals[keyMaxFiles]); err != nil {
		return Config{}, fmt.Errorf("argument %s: %w", keyMaxFiles, err)
	}
	return cfg, cfg.validate()
}

// ServeIfLogger runs the logger and exits the process when the process was
// started by a shim through a URI from URI (it recognises the marker
// argument); otherwise it returns at once and does nothing. Call it first
// thing in main() and in TestMain.
//
// With bad arguments it writes a message to stderr and exits with status 2;
// the shim discards the logger's stderr.
func ServeIfLogger() {
	args := os.Args[1:]
	if !isLogger(args) {
		return
	}
	cfg, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pouch logger: %v\n", err)
		os.Exit(2)
	}
	logging.Run(logger(cfg)) // exits
}

// logger returns the LoggerFunc that writes to cfg's log.
func logger(cfg Config) logging.LoggerFunc {
	return func(ctx context.Context, lc *logging.Config, ready func() error) error {
		f, err := openLog(cfg)
		if err != nil {
			return err
		}
		if err := ready(); err != nil {
			f.close()
			return fmt.Errorf("signal ready: %w", err)
		}
		return copyStreams(ctx, f, lc.Stdout, lc.Stderr)
	}
}

// logFile writes whole lines to a lumberjack logger. It rotates by itself,
// through Rotate, before lumberjack would, and then removes the rotated
// files beyond maxFiles at once (lumberjack does that later, in a
// goroutine, and cannot keep zero rotated files).
type logFile struct {
	mu       sync.Mutex
	lj       *lumberjack.Logger
	path     string
	maxFiles int
	max      int64 // bytes
	size     int64 // of the current file
	closed   bool
	err      error // the first error
}

func openLog(cfg Config) (*logFile, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, err
	}
	// Create the file now, so that errors show before ready and Tail finds
	// an empty log rather than none; lumberjack opens it on the first write.
	fh, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	fh.Close()
	if err != nil {
		return nil, err
	}
	return &logFile{
		// MaxBackups 0: lumberjack keeps every rotated file, prune removes them.
		lj:       &lumberjack.Logger{Filename: cfg.Path, MaxSize: cfg.MaxSizeMiB},
		path:     cfg.Path,
		maxFiles: cfg.MaxFiles,
		max:      int64(cfg.MaxSizeMiB) << 20,
		size:     fi.Size(),
	}, nil
}

// writeLine writes one line (or piece of one, up to maxLine+1 bytes) in one
// Write. Errors are remembered and the line is dropped: the logger must go
// on reading, or the container blocks on a full pipe.
func (f *logFile) writeLine(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	// lumberjack's own test is size+len > max, and >= when it opens an
	// existing file: with >= here it never rotates by itself.
	if f.size+int64(len(p)) >= f.max {
		if err := f.lj.Rotate(); err != nil {
			f.fail(err)
		} else {
			f.size = 0
			f.fail(prune(f.path, f.maxFiles-1))
		}
	}
	n, err := f.lj.Write(p)
	f.size += int64(n)
	f.fail(err)
}

func (f *logFile) fail(err error) {
	if f.err == nil {
		f.err = err
	}
}

// close closes the file and returns the first error of the logger.
func (f *logFile) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		f.fail(f.lj.Close())
	}
	return f.err
}

// copyStreams copies the streams line by line into f until all of them
// reach EOF, or until ctx is done and then at most drainTimeout more, and
// closes f.
func copyStreams(ctx context.Context, f *logFile, streams ...io.Reader) error {
	var wg sync.WaitGroup
	for _, r := range streams {
		if r != nil {
			wg.Go(func() { copyLines(f, r) })
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t := time.NewTimer(drainTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
	}
	return f.close()
}

func copyLines(f *logFile, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLine)
	var buf []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' { // too long, or the last one
				buf = append(append(buf[:0], line...), '\n')
				line = buf
			}
			f.writeLine(line)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// backups returns the rotated files of the log at path, newest first.
func backups(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext) + "-"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type backup struct {
		name string
		t    time.Time
	}
	var bs []backup
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ext) ||
			len(name) < len(prefix)+len(ext) {
			continue
		}
		t, err := time.Parse(backupTimeFormat, name[len(prefix):len(name)-len(ext)])
		if err == nil {
			bs = append(bs, backup{name, t})
		}
	}
	slices.SortFunc(bs, func(a, b backup) int {
		if c := b.t.Compare(a.t); c != 0 {
			return c
		}
		return strings.Compare(b.name, a.name)
	})
	paths := make([]string, len(bs))
	for i, b := range bs {
		paths[i] = filepath.Join(dir, b.name)
	}
	return paths, nil
}

// prune removes the rotated files of the log at path but the newest keep.
func prune(path string, keep int) error {
	bs, err := backups(path)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range bs[min(keep, len(bs)):] {
		if err := os.Remove(b); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Tail returns at most maxLines final lines (and at most maxBytes bytes) of
// the container's log at path, joined by '\n' without a final newline. It
// reads the newest rotated file too when the current one holds fewer lines.
// Bytes that are not printable UTF-8 (control characters but '\t', invalid
// UTF-8, and the like) are replaced by strconv.Quote-style escapes such as
// \x1b, \r, \x00 or \u009b, because the text ends up in Terraform's output
// and an untrusted container must not inject terminal escape sequences.
// A log that does not exist (yet) is empty: Tail returns "" and no error.
func Tail(path string, maxLines, maxBytes int) (string, error) {
	if maxLines <= 0 || maxBytes <= 0 {
		return "", nil
	}
	// Two bytes more: the final newline, and the one before the first line
	// that tells whether that line is complete.
	budget := maxBytes + 2
	data, whole, err := readTail(path, budget)
	if errors.Is(err, fs.ErrNotExist) {
		whole = true // being rotated, or not created yet
	} else if err != nil {
		return "", err
	}
	if whole && len(data) < budget && bytes.Count(data, []byte("\n")) < maxLines {
		if bs, err := backups(path); err == nil && len(bs) > 0 {
			older, olderWhole, err := readTail(bs[0], budget-len(data))
			if err == nil {
				if len(older) > 0 && older[len(older)-1] != '\n' {
					older = append(older, '\n')
				}
				data, whole = append(older, data...), olderWhole
			} else if !errors.Is(err, fs.ErrNotExist) { // pruned meanwhile: fine
				return "", err
			}
		}
	}
	if i := bytes.IndexByte(data, '\n'); !whole && i >= 0 && i < len(data)-1 {
		data = data[i+1:] // the first line may be cut
	}
	if len(data) == 0 {
		return "", nil
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	lines = lines[max(0, len(lines)-maxLines):]
	out := make([]string, len(lines))
	size := -1
	for i, l := range lines {
		out[i] = sanitize(l)
		size += len(out[i]) + 1
	}
	for len(out) > 1 && size > maxBytes {
		size -= len(out[0]) + 1
		out = out[1:]
	}
	s := strings.Join(out, "\n")
	if len(s) > maxBytes { // one long line: keep its end
		i := len(s) - maxBytes
		for i < len(s) && !utf8.RuneStart(s[i]) {
			i++
		}
		s = s[i:]
	}
	return s, nil
}

// readTail reads the last n bytes of the file at path; whole reports that
// they start at its beginning.
func readTail(path string, n int) (data []byte, whole bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	off := max(0, fi.Size()-int64(n))
	data, err = io.ReadAll(io.NewSectionReader(f, off, int64(n)))
	return data, off == 0, err
}

// sanitize makes a log line safe to print on a terminal.
func sanitize(line []byte) string {
	var b strings.Builder
	for len(line) > 0 {
		r, size := utf8.DecodeRune(line)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, line[0])
		case r == '\t' || strconv.IsPrint(r):
			b.Write(line[:size])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		line = line[size:]
	}
	return b.String()
}

// Install copies the executable at binary into dir (created 0700 if
// missing) as "pouch-<first 16 hex digits of its sha256>", mode 0700, and
// returns the copy's absolute path. An existing copy with the right
// checksum is reused; a wrong one is replaced atomically (a temporary file
// in dir renamed over it).
//
// The logger must keep working after the provider binary that started a
// task is upgraded or deleted (Terraform keeps providers in .terraform/,
// which moves and gets deleted) and when containerd's restart monitor
// restarts the task, so URIs must point at this stable copy. Install never
// removes copies of other versions: tasks and restart labels may use them.
func Install(binary, dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	sum, err := fileSHA256(binary)
	if err != nil {
		return "", fmt.Errorf("install logger: %w", err)
	}
	name := "pouch-" + hex.EncodeToString(sum)[:16]
	dst := filepath.Join(dir, name)
	if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() {
		if have, err := fileSHA256(dst); err == nil && bytes.Equal(have, sum) {
			if fi.Mode().Perm() != 0o700 {
				if err := os.Chmod(dst, 0o700); err != nil {
					return "", fmt.Errorf("install logger: %w", err)
				}
			}
			return dst, nil
		}
	}
	if err := copyFile(binary, dir, dst, sum); err != nil {
		return "", fmt.Errorf("install logger: %w", err)
	}
	return dst, nil
}

// copyFile copies src to dst through a temporary file in dir, checking that
// the copy's checksum is sum.
func copyFile(src, dir, dst string, sum []byte) (err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), sum) {
		return fmt.Errorf("%s changed while it was copied", src)
	}
	if err := tmp.Chmod(0o700); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
