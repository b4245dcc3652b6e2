package engine

import (
	"slices"
	"strings"
	"testing"
)

// FuzzMergeEnv checks the env merge rules on arbitrary input: every user
// variable appears once with the user's value, every other image variable
// keeps the image's value, and nothing else appears.
func FuzzMergeEnv(f *testing.F) {
	f.Add("PATH=/bin\nA=1", "A=2\nB=3")
	f.Add("", "X=")
	f.Add("A=1\nA=2", "A=3")
	f.Fuzz(func(t *testing.T, imageEnv, userEnv string) {
		image := strings.Split(imageEnv, "\n")
		user := map[string]string{}
		for _, kv := range strings.Split(userEnv, "\n") {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				user[k] = v
			}
		}
		got := MergeEnv(image, user)
		seen := map[string]int{}
		for _, kv := range got {
			k, v, _ := strings.Cut(kv, "=")
			seen[k]++
			if uv, ok := user[k]; ok {
				if v != uv || seen[k] > 1 {
					t.Fatalf("user variable %s: %q (seen %d times) in %q", k, v, seen[k], got)
				}
			} else if !slices.Contains(image, kv) {
				t.Fatalf("%q comes from neither the image nor the user", kv)
			}
		}
		for k := range user {
			if seen[k] != 1 {
				t.Fatalf("user variable %s appears %d times in %q", k, seen[k], got)
			}
		}
	})
}

// FuzzMergeProcess checks the entrypoint/command rules: the user's
// entrypoint, when set, starts the args and drops the image's CMD; the
// user's command, when set, ends them.
func FuzzMergeProcess(f *testing.F) {
	f.Add("/entry", "cmd", "", "", true, false)
	f.Add("", "sh", "/x", "y", true, true)
	f.Fuzz(func(t *testing.T, imgEntry, imgCmd, userEntry, userCmd string, setEntry, setCmd bool) {
		words := func(s string) []string { return strings.Fields(s) }
		img := ImageConfig{Entrypoint: words(imgEntry), Cmd: words(imgCmd)}
		var spec ContainerSpec
		if setEntry {
			spec.Entrypoint = append([]string{}, words(userEntry)...)
		}
		if setCmd {
			spec.Command = append([]string{}, words(userCmd)...)
		}
		p, err := MergeProcess(spec, img)
		entry, cmd := img.Entrypoint, img.Cmd
		if setEntry {
			entry, cmd = spec.Entrypoint, nil
		}
		if setCmd {
			cmd = spec.Command
		}
		want := append(slices.Clone(entry), cmd...)
		if len(want) == 0 {
			if err == nil {
				t.Fatal("nothing to run, yet no error")
			}
			return
		}
		if err != nil || !slices.Equal(p.Args, want) {
			t.Fatalf("args = %q, %v; want %q", p.Args, err, want)
		}
	})
}
