package engine

import (
	"path"
	"strings"
	"testing"
)

// decodeVolumeDirName undoes volumeDirName: "%2F" is '/', "%25" is '%',
// read left to right. ok is false when name holds a '%' that starts
// neither.
func decodeVolumeDirName(name string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] != '%' {
			b.WriteByte(name[i])
			continue
		}
		switch {
		case strings.HasPrefix(name[i:], "%2F"):
			b.WriteByte('/')
		case strings.HasPrefix(name[i:], "%25"):
			b.WriteByte('%')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// checkVolumeDirName asserts what volumeDirName promises for target, a
// clean absolute path: one path element that decodes back to target.
func checkVolumeDirName(t *testing.T, target string) string {
	t.Helper()
	name := volumeDirName(target)
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		t.Fatalf("volumeDirName(%q) = %q, not one path element", target, name)
	}
	if got, ok := decodeVolumeDirName(name); !ok || got != strings.TrimPrefix(target, "/") {
		t.Fatalf("volumeDirName(%q) = %q, which decodes to %q (ok %v)", target, name, got, ok)
	}
	return name
}

func TestVolumeDirName(t *testing.T) {
	// The old scheme wrote '/' as '_': "/a/b" and "/a_b" shared a
	// directory.
	want := map[string]string{
		"/a/b":   "a%2Fb",
		"/a_b":   "a_b",
		"/a%2Fb": "a%252Fb",
		"/a%b":   "a%25b",
	}
	seen := map[string]string{}
	for target, w := range want {
		name := checkVolumeDirName(t, target)
		if name != w {
			t.Errorf("volumeDirName(%q) = %q, want %q", target, name, w)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("volumeDirName(%q) = volumeDirName(%q) = %q", target, other, name)
		}
		seen[name] = target
	}
	for _, target := range []string{"/data", "/var/lib/db", "/...", "/%", "/%25", "/%2F", "/a/b/c"} {
		checkVolumeDirName(t, target)
	}
}

func FuzzVolumeDirName(f *testing.F) {
	seeds := []string{"/a/b", "/a_b", "/a%2Fb", "/%", "/%25", "/data"}
	for _, a := range seeds {
		for _, b := range seeds {
			f.Add(a, b)
		}
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		name := func(s string) (string, bool) {
			if CheckImageVolume(s) != nil {
				return "", false
			}
			clean := path.Clean(s)
			n := checkVolumeDirName(t, clean)
			if len(n) > maxFileName {
				t.Fatalf("CheckImageVolume(%q) accepted a directory name of %d bytes", s, len(n))
			}
			return n, true
		}
		na, okA := name(a)
		nb, okB := name(b)
		if okA && okB && path.Clean(a) != path.Clean(b) && na == nb {
			t.Fatalf("%q and %q share the directory name %q", a, b, na)
		}
	})
}

func TestContained(t *testing.T) {
	const dir = "/d/x"
	for _, p := range []string{"/d/x/a", "/d/x/a/b", "/d/x/a/", "/d/x/./a", "/d/x//a"} {
		if err := contained(dir, p); err != nil {
			t.Errorf("contained(%q, %q) = %v, want nil", dir, p, err)
		}
	}
	for _, p := range []string{"/d/x", dir, "/d/x/", "/d/x/.", "/d/xy/a", "/d/x/../y", "relative/a", "d/x/a",
		"/d/x/a/../../y", "/d/x/a/../..", "", "/", "/d"} {
		err := contained(dir, p)
		if err == nil {
			t.Errorf("contained(%q, %q) = nil, want an error", dir, p)
		} else if !strings.Contains(err.Error(), "is not inside /d/x") {
			t.Errorf("contained(%q, %q) = %q, want it to say the path is not inside the dir", dir, p, err)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		frag string
	}{
		{"relative data root", Options{Address: "/nonexistent.sock", DataRoot: "relative"}, "data_root must be an absolute path"},
		{"root data root", Options{Address: "/nonexistent.sock", DataRoot: "/"}, "data_root must not be the root directory"},
		{"data root with ..", Options{Address: "/nonexistent.sock", DataRoot: "/var/../x"}, "data_root must not contain '..'"},
		{"bad namespace", Options{Address: "/nonexistent.sock", DataRoot: "/var/lib/pouch", Namespace: "bad/ns"}, "namespace must be a containerd namespace"},
	}
	for _, c := range cases {
		e, err := New(c.opts)
		if err == nil {
			_ = e.Close()
			t.Errorf("%s: New accepted %+v", c.name, c.opts)
			continue
		}
		if !strings.Contains(err.Error(), c.frag) {
			t.Errorf("%s: error %q does not contain %q", c.name, err, c.frag)
		}
	}

	e, err := New(Options{Address: "unix:///nonexistent.sock", DataRoot: "/var/lib/pouch/", Namespace: "pouch"})
	if err != nil {
		t.Fatalf("New refused good options: %v", err)
	}
	defer func() { _ = e.Close() }()
	if got := e.Options(); got.DataRoot != "/var/lib/pouch" || got.Address != "/nonexistent.sock" || got.Namespace != "pouch" {
		t.Errorf("options in effect: %+v, want the data root cleaned and the unix:// prefix dropped", got)
	}
}
