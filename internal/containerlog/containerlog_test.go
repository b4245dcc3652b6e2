package containerlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"
)

// shimArgs turns a log URI into the logger's arguments exactly as the shim
// does (NewBinaryCmd in containerd's cmd/containerd-shim-runc-v2/process/io_util.go).
func shimArgs(binaryURI *url.URL) []string {
	var args []string
	for k, vs := range binaryURI.Query() {
		args = append(args, k)
		if len(vs) > 0 {
			args = append(args, vs[0])
		}
	}
	return args
}

// permutations returns every order of the key value pairs of args.
func permutations(args []string) [][]string {
	if len(args) <= 2 {
		return [][]string{args}
	}
	var all [][]string
	for i := 0; i < len(args); i += 2 {
		rest := slices.Concat(args[:i], args[i+2:])
		for _, p := range permutations(rest) {
			all = append(all, slices.Concat(args[i:i+2], p))
		}
	}
	return all
}

func TestURIArgsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		binary string
		cfg    Config
	}{
		{"/usr/libexec/pouch/pouch-0123456789abcdef", Config{Path: "/var/lib/pouch/containers/ns/id/container.log", MaxSizeMiB: 1, MaxFiles: 2}},
		{"/opt/my dir/pouch?x=1&y#z", Config{Path: "/tmp/a dir/we?ird&name=1#frag %41+plus/é/c.log", MaxSizeMiB: 20, MaxFiles: 1}},
	} {
		u, err := URI(tc.binary, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		// The client sends u.String(), the shim parses it.
		parsed, err := url.Parse(u.String())
		if err != nil {
			t.Fatalf("parse %q: %v", u, err)
		}
		if parsed.Scheme != "binary" || parsed.Path != tc.binary {
			t.Fatalf("URI %q: scheme %q path %q, want binary and %q", u, parsed.Scheme, parsed.Path, tc.binary)
		}
		args := shimArgs(parsed)
		if len(args) != 8 {
			t.Fatalf("args %q, want 4 pairs", args)
		}
		for i := range 20 { // map order is random
			args := shimArgs(parsed)
			if !isLogger(args) {
				t.Fatalf("run %d: isLogger(%q) = false", i, args)
			}
			got, err := parseArgs(args)
			if err != nil || got != tc.cfg {
				t.Fatalf("run %d: parseArgs(%q) = %+v, %v; want %+v", i, args, got, err, tc.cfg)
			}
		}
		perms := permutations(args)
		if len(perms) != 24 {
			t.Fatalf("%d permutations", len(perms))
		}
		for _, p := range perms {
			if got, err := parseArgs(p); err != nil || got != tc.cfg {
				t.Fatalf("parseArgs(%q) = %+v, %v; want %+v", p, got, err, tc.cfg)
			}
		}
	}
}

func TestURIDefaultsAndErrors(t *testing.T) {
	u, err := URI("/bin/pouch", Config{Path: "/logs/c.log"})
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get(keyMaxSize) != strconv.Itoa(DefaultMaxSizeMiB) || q.Get(keyMaxFiles) != strconv.Itoa(DefaultMaxFiles) || q.Get(markerKey) != "1" {
		t.Fatalf("URI %q: want defaults %d/%d and marker 1", u, DefaultMaxSizeMiB, DefaultMaxFiles)
	}
	for _, tc := range []struct {
		binary string
		cfg    Config
	}{
		{"pouch", Config{Path: "/logs/c.log"}},
		{"/bin/pouch", Config{Path: "logs/c.log"}},
		{"/bin/pouch", Config{Path: "/logs/c\x00.log"}},
		{"/bin/pouch", Config{Path: "/logs/c.log", MaxSizeMiB: -1}},
		{"/bin/pouch", Config{Path: "/logs/c.log", MaxFiles: -1}},
	} {
		if u, err := URI(tc.binary, tc.cfg); err == nil {
			t.Errorf("URI(%q, %+v) = %q, want an error", tc.binary, tc.cfg, u)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, args := range [][]string{nil, {"-debug"}, {"path", "/x"}} {
		if isLogger(args) {
			t.Errorf("isLogger(%q) = true", args)
		}
	}
	good := []string{"pouch-logger", "1", "path", "/l/c.log", "max-size", "3", "max-files", "4"}
	if cfg, err := parseArgs(good); err != nil || cfg != (Config{Path: "/l/c.log", MaxSizeMiB: 3, MaxFiles: 4}) {
		t.Fatalf("parseArgs(%q) = %+v, %v", good, cfg, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pouch-logger", "2", "path", "/l/c.log", "max-size", "3", "max-files", "4"}, "protocol version"},
		{[]string{"pouch-logger", "1", "max-size", "3", "max-files", "4"}, `"path" missing`},
		{[]string{"pouch-logger", "1", "path", "c.log", "max-size", "3", "max-files", "4"}, "not an absolute path"},
		{[]string{"pouch-logger", "1", "path", "/l/c.log", "max-size", "0", "max-files", "4"}, "max size"},
		{[]string{"pouch-logger", "1", "path", "/l/c.log", "max-size", "3", "max-files", "0"}, "max files"},
		{[]string{"pouch-logger", "1", "path", "/l/c.log", "max-size", "x", "max-files", "4"}, "max-size"},
		{[]string{"pouch-logger", "1", "path"}, "pairs"},
		{[]string{"pouch-logger", "1", "path", "/l/c.log", "max-size", "3", "max-files", "4", "color", "red"}, "unknown"},
		{[]string{"pouch-logger", "1", "path", "/l/c.log", "path", "/m/c.log", "max-size", "3", "max-files", "4"}, "twice"},
	} {
		if !isLogger(tc.args) {
			t.Errorf("isLogger(%q) = false", tc.args)
		}
		if cfg, err := parseArgs(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseArgs(%q) = %+v, %v; want an error with %q", tc.args, cfg, err, tc.want)
		}
	}
}

// TestServeIfLoggerBadArgs runs the test binary (whose TestMain calls
// ServeIfLogger) as a logger with bad arguments.
func TestServeIfLoggerBadArgs(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "max-files", "1", "pouch-logger", "7", "path", filepath.Join(t.TempDir(), "c.log"), "max-size", "1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("run as logger with a bad version: %v, want exit status 2 (stderr %q)", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "pouch logger: logger protocol version \"7\"") {
		t.Fatalf("stderr %q does not explain the error", stderr.String())
	}
}

// runLogger starts the LoggerFunc with pipes as stdout and stderr. The
// channel gets its result; ready counts the ready calls and fails unless the
// log file exists at that point.
func runLogger(t *testing.T, ctx context.Context, cfg Config) (stdout, stderr *io.PipeWriter, ready *atomic.Int32, result <-chan error) {
	t.Helper()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	t.Cleanup(func() { outW.Close(); errW.Close() })
	ready = new(atomic.Int32)
	res := make(chan error, 1)
	go func() {
		res <- logger(cfg)(ctx, &logging.Config{ID: "c", Namespace: "ns", Stdout: outR, Stderr: errR}, func() error {
			ready.Add(1)
			_, err := os.Stat(cfg.Path)
			return err
		})
	}()
	return outW, errW, ready, res
}

func waitResult(t *testing.T, result <-chan error) error {
	t.Helper()
	select {
	case err := <-result:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("the logger did not return within 60 s")
		return nil
	}
}

// numbered returns line i of stream s: "s 0000042 <padding>\n", 30 to 230 bytes.
func numbered(s string, i int) string {
	return fmt.Sprintf("%s %07d %s\n", s, i, strings.Repeat(string(rune('a'+i%26)), 16+i%201))
}

// parseNumbered checks that line (without its newline) is a complete
// numbered line and returns its stream and number.
func parseNumbered(line string) (string, int, bool) {
	s, rest, _ := strings.Cut(line, " ")
	num, _, _ := strings.Cut(rest, " ")
	i, err := strconv.Atoi(num)
	if err != nil || line+"\n" != numbered(s, i) || (s != "out" && s != "err") {
		return "", 0, false
	}
	return s, i, true
}

// logFiles returns the log's files oldest first, the current one last.
func logFiles(t *testing.T, path string) []string {
	t.Helper()
	bs, err := backups(path)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(bs)
	return append(bs, path)
}

// chunks cuts data into pieces of 1 to 4999 bytes, so lines are split across writes.
func chunks(data []byte) [][]byte {
	var cs [][]byte
	for i := 1; len(data) > 0; i++ {
		n := min(len(data), (i*7919)%4999+1)
		cs = append(cs, data[:n])
		data = data[n:]
	}
	return cs
}

func TestLoggerRotates(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Path: filepath.Join(dir, "c.log"), MaxSizeMiB: 1, MaxFiles: 3}
	stdout, stderr, ready, result := runLogger(t, context.Background(), cfg)

	var out, errs bytes.Buffer
	nOut := 0
	for ; out.Len() < 3<<20; nOut++ {
		out.WriteString(numbered("out", nOut))
	}
	nErr := 0
	for ; errs.Len() < 300<<10; nErr++ {
		errs.WriteString(numbered("err", nErr))
	}
	// Both streams at once: ten pieces of stdout, then one of stderr.
	outChunks, errChunks := chunks(out.Bytes()), chunks(errs.Bytes())
	writeErr := make(chan error, 1)
	go func() {
		defer stdout.Close()
		defer stderr.Close()
		for i := 0; len(outChunks) > 0 || len(errChunks) > 0; i++ {
			w, cs := stdout, &outChunks
			if i%11 == 10 && len(errChunks) > 0 || len(outChunks) == 0 {
				w, cs = stderr, &errChunks
			}
			if _, err := w.Write((*cs)[0]); err != nil {
				writeErr <- err
				return
			}
			*cs = (*cs)[1:]
		}
		writeErr <- nil
	}()
	if err := waitResult(t, result); err != nil {
		t.Fatalf("logger: %v", err)
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	if n := ready.Load(); n != 1 {
		t.Fatalf("ready called %d times", n)
	}

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 3 || len(ents) < 2 {
		t.Fatalf("%d files in the log dir, want 2 or 3 (rotated, at most MaxFiles)", len(ents))
	}
	files := logFiles(t, cfg.Path)
	if len(files) != len(ents) {
		t.Fatalf("log files %q, dir has %d entries", files, len(ents))
	}
	var total int64
	var all []string // the lines of all files, oldest first
	last := map[string]int{"out": -1, "err": -1}
	for fi, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		total += int64(len(data))
		if len(data) > 1<<20 {
			t.Errorf("%s: %d bytes, more than MaxSizeMiB", f, len(data))
		}
		if !bytes.HasSuffix(data, []byte("\n")) {
			t.Fatalf("%s does not end with a newline", f)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if fi > 0 {
			// Rotated only when the next line would not have fit.
			prev, _ := os.Stat(files[fi-1])
			if prev.Size()+int64(len(lines[0])+1) < 1<<20 {
				t.Errorf("%s rotated at %d bytes although the next line (%d bytes) fit", files[fi-1], prev.Size(), len(lines[0])+1)
			}
		}
		for _, l := range lines {
			s, i, ok := parseNumbered(l)
			if !ok {
				t.Fatalf("%s: broken or interleaved line %.80q", f, l)
			}
			// Every stream's kept lines are consecutive: nothing lost or reordered.
			if last[s] >= 0 && i != last[s]+1 {
				t.Fatalf("%s: %s line %d follows %d", f, s, i, last[s])
			}
			last[s] = i
		}
		all = append(all, lines...)
	}
	if last["out"] != nOut-1 || last["err"] != nErr-1 {
		t.Fatalf("last lines kept: out %d err %d, want %d and %d", last["out"], last["err"], nOut-1, nErr-1)
	}
	if lastLine := all[len(all)-1]; lastLine+"\n" != numbered("out", nOut-1) && lastLine+"\n" != numbered("err", nErr-1) {
		t.Fatalf("the current file ends with %.40q, not with a stream's last line", lastLine)
	}
	if total > 3<<20+250 {
		t.Fatalf("%d bytes kept, more than 3 MiB + one line", total)
	}

	// Tail across the boundary between the newest rotated file and the current one.
	cur, _ := os.ReadFile(cfg.Path)
	n := strings.Count(string(cur), "\n") + 3
	got, err := Tail(cfg.Path, n, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(all[len(all)-n:], "\n"); got != want {
		t.Fatalf("Tail(%d lines) = %d bytes, want the last %d lines (%d bytes)", n, len(got), n, len(want))
	}
}

func TestLoggerLinesAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing", "dir")
	cfg := Config{Path: filepath.Join(dir, "c.log"), MaxSizeMiB: 1, MaxFiles: 2}
	stdout, stderr, ready, result := runLogger(t, context.Background(), cfg)
	long := strings.Repeat("x", 600<<10)
	go func() {
		io.WriteString(stdout, long+"\nshort\nunterminated")
		stdout.Close()
		io.WriteString(stderr, "err\n")
		stderr.Close()
	}()
	if err := waitResult(t, result); err != nil {
		t.Fatal(err)
	}
	if n := ready.Load(); n != 1 {
		t.Fatalf("ready called %d times", n)
	}
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var outLines []string
	sawErr := false
	for _, l := range lines[:len(lines)-1] {
		if l == "err" {
			sawErr = true
		} else {
			outLines = append(outLines, l)
		}
	}
	want := []string{long[:maxLine], long[maxLine : 2*maxLine], long[2*maxLine:], "short", "unterminated"}
	if !sawErr || !slices.Equal(outLines, want) || lines[len(lines)-1] != "" {
		t.Fatalf("log holds %d lines of lengths %v, want the long line split at 256 KiB, short, unterminated and err", len(lines), lineLens(lines))
	}
	for p, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, cfg.Path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
	}
}

func lineLens(lines []string) []int {
	var ns []int
	for _, l := range lines {
		ns = append(ns, len(l))
	}
	return ns
}

func TestLoggerAppendsAndKeepsOneFile(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Path: filepath.Join(dir, "c.log"), MaxSizeMiB: 1, MaxFiles: 1}
	for _, s := range []string{"first\n", "second\n"} { // a task, then its restart
		stdout, stderr, _, result := runLogger(t, context.Background(), cfg)
		stderr.Close()
		io.WriteString(stdout, s)
		stdout.Close()
		if err := waitResult(t, result); err != nil {
			t.Fatal(err)
		}
	}
	if data, _ := os.ReadFile(cfg.Path); string(data) != "first\nsecond\n" {
		t.Fatalf("log %q, want both tasks' lines", data)
	}

	stdout, stderr, _, result := runLogger(t, context.Background(), cfg)
	stderr.Close()
	var out bytes.Buffer
	n := 0
	for ; out.Len() < 5<<19; n++ {
		out.WriteString(numbered("out", n))
	}
	go func() { stdout.Write(out.Bytes()); stdout.Close() }()
	if err := waitResult(t, result); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d files with MaxFiles 1, want 1", len(ents))
	}
	data, _ := os.ReadFile(cfg.Path)
	if len(data) > 1<<20 || !strings.HasSuffix(string(data), numbered("out", n-1)) {
		t.Fatalf("log of %d bytes, want at most 1 MiB ending with the last line", len(data))
	}
}

func TestLoggerCancel(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Path: filepath.Join(dir, "c.log"), MaxSizeMiB: 1, MaxFiles: 2}

	// SIGTERM (ctx cancelled) with output still coming: it is written.
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr, _, result := runLogger(t, ctx, cfg)
	io.WriteString(stdout, "before\npartial") // returns once the logger has read it
	cancel()
	io.WriteString(stderr, "after cancel\n")
	stdout.Close()
	stderr.Close()
	if err := waitResult(t, result); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(cfg.Path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if sorted := slices.Sorted(slices.Values(lines)); !slices.Equal(sorted, []string{"after cancel", "before", "partial"}) ||
		slices.Index(lines, "before") > slices.Index(lines, "partial") {
		t.Fatalf("log %q, want before, partial and after cancel", data)
	}

	// Streams that never end: the logger returns after drainTimeout.
	defer func(d time.Duration) { drainTimeout = d }(drainTimeout)
	drainTimeout = 10 * time.Millisecond
	ctx, cancel = context.WithCancel(context.Background())
	stdout, _, _, result = runLogger(t, ctx, cfg)
	io.WriteString(stdout, "last\n")
	cancel()
	if err := waitResult(t, result); err != nil {
		t.Fatal(err)
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	for name, content := range map[string]string{
		"c-2024-01-01T00-00-00.000.log": "old1\nold2\n",
		"c-2024-01-02T00-00-00.000.log": "b1\nb2\nb3\n",
		"c-garbage.log":                 "garbage\n",
		"c.log":                         "c1\nc2\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		lines, bytes int
		want         string
	}{
		{2, 1 << 20, "c1\nc2"},
		{1, 1 << 20, "c2"},
		{4, 1 << 20, "b2\nb3\nc1\nc2"},
		{100, 1 << 20, "b1\nb2\nb3\nc1\nc2"}, // only the newest rotated file
		{100, 8, "b3\nc1\nc2"},
		{100, 7, "c1\nc2"},
		{100, 2, "c2"},
		{100, 1, "2"},
		{0, 100, ""},
	} {
		if got, err := Tail(path, tc.lines, tc.bytes); err != nil || got != tc.want {
			t.Errorf("Tail(%d lines, %d bytes) = %q, %v; want %q", tc.lines, tc.bytes, got, err, tc.want)
		}
	}

	// Terminal control sequences are neutralised.
	evil := "red \x1b[31mX\x1b[0m\r\x00 bell\a tab\tc1:\u009b2J bad:\xff\xfe ok:é \u202e"
	if err := os.WriteFile(path, []byte("line1\n"+evil+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Tail(path, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := `red \x1b[31mX\x1b[0m\r\x00 bell\a tab` + "\t" + `c1:\u009b2J bad:\xff\xfe ok:é \u202e`
	if got != want {
		t.Fatalf("Tail = %q, want %q", got, want)
	}
	if !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool {
		return r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0
	}) {
		t.Fatalf("Tail = %q holds control characters", got)
	}
	// maxBytes bounds the escaped text, cut at a line boundary.
	if got, _ := Tail(path, 2, len(want)+3); got != want {
		t.Fatalf("Tail with a bound that cuts line1 = %q", got)
	}
	if got, _ := Tail(path, 1, 10); len(got) > 10 || !strings.HasSuffix(want, got) {
		t.Fatalf("Tail(1 line, 10 bytes) = %q", got)
	}

	// The current file is gone (being rotated): the newest rotated one is read.
	os.Remove(path)
	if got, err := Tail(path, 2, 100); err != nil || got != "b2\nb3" {
		t.Fatalf("Tail without current file = %q, %v", got, err)
	}
	// No log at all: empty.
	if got, err := Tail(filepath.Join(dir, "none.log"), 10, 100); err != nil || got != "" {
		t.Fatalf("Tail of a missing log = %q, %v", got, err)
	}
}

func TestInstall(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "provider")
	content := make([]byte, 1<<20)
	rand.Read(content)
	if err := os.WriteFile(src, content, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	dir := filepath.Join(tmp, "bin") // missing: created
	want := filepath.Join(dir, "pouch-"+hex.EncodeToString(sum[:])[:16])

	check := func() os.FileInfo {
		t.Helper()
		p, err := Install(src, dir)
		if err != nil || p != want {
			t.Fatalf("Install = %q, %v; want %q", p, err, want)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o700 {
			t.Fatalf("copy has mode %v, want 0700", fi.Mode())
		}
		if data, _ := os.ReadFile(p); !bytes.Equal(data, content) {
			t.Fatal("copy differs from the binary")
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("%d files in %s, want only the copy", len(ents), dir)
		}
		return fi
	}
	first := check()
	second := check()
	if !os.SameFile(first, second) || !first.ModTime().Equal(second.ModTime()) {
		t.Fatal("second Install rewrote the copy")
	}

	f, err := os.OpenFile(want, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("corrupt"), 1000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if third := check(); os.SameFile(first, third) {
		t.Fatal("the corrupt copy was rewritten in place, not replaced")
	}
}
