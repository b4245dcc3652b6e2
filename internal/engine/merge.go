package engine

import (
	"fmt"
	"maps"
	"sort"
	"strings"
)

// ImageConfig holds the parts of an image's configuration that become a
// container's defaults.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	// Volumes are the paths the image declares as VOLUMEs, sorted.
	Volumes []string
}

// errNoCommand is returned when neither the image nor the user gives the
// container something to run.
var errNoCommand = fmt.Errorf("%w: nothing to run: the image has no ENTRYPOINT or CMD; set `command` (or `entrypoint`)", ErrInvalidSpec)

// MergeProcess applies the user's values over the image's defaults. The rules
// are Docker's:
//   - entrypoint: the user's if set, else the image's;
//   - command: the user's if set; else the image's CMD, unless the user set an
//     entrypoint (a new entrypoint does not inherit the image's CMD);
//   - env: the image's variables, each overridden by the user's of the same
//     name (secret ones included), then the user's other variables in name
//     order;
//   - working dir and user: the user's if set, else the image's; the working
//     dir defaults to "/".
//
// Only the image's values are inherited: nothing of an earlier image lingers.
func MergeProcess(spec ContainerSpec, img ImageConfig) (Process, error) {
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if spec.Entrypoint != nil {
		entrypoint, cmd = spec.Entrypoint, nil
	}
	if spec.Command != nil {
		cmd = spec.Command
	}
	args := make([]string, 0, len(entrypoint)+len(cmd))
	args = append(args, entrypoint...)
	args = append(args, cmd...)
	if len(args) == 0 {
		return Process{}, errNoCommand
	}
	env := spec.Env
	if len(spec.SecretEnv) > 0 {
		env = maps.Clone(spec.Env)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, spec.SecretEnv)
	}
	p := Process{
		Args:       args,
		Env:        MergeEnv(img.Env, env),
		WorkingDir: firstNonEmpty(spec.WorkingDir, img.WorkingDir, "/"),
		User:       firstNonEmpty(spec.User, img.User),
	}
	if err := checkProcess(p); err != nil {
		return Process{}, fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	return p, nil
}

// MergeEnv overlays user variables on an image's "KEY=VALUE" list.
func MergeEnv(image []string, user map[string]string) []string {
	out := make([]string, 0, len(image)+len(user))
	seen := make(map[string]bool, len(user))
	for _, kv := range image {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := user[k]; ok {
			if !seen[k] {
				out = append(out, k+"="+v)
				seen[k] = true
			}
			continue
		}
		out = append(out, kv)
	}
	keys := make([]string, 0, len(user))
	for k := range user {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+user[k])
	}
	return out
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
