package engine

import (
	"fmt"
	"time"
)

// validateSpec refuses a spec that cannot run, naming the field and the
// fix. Its rules are those of rules.go, which the provider also applies at
// plan time; this guards every caller of the engine.
func (e *Engine) validateSpec(spec ContainerSpec) error {
	if err := validateSpec(spec); err != nil {
		return err
	}
	if spec.IPv4Address != "" {
		if err := CheckFixedAddress(spec.IPv4Address, e.opts.Network); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, inField("ipv4_address", err))
		}
	}
	return nil
}

// validateSpec judges spec by the rules that need no engine options.
func validateSpec(spec ContainerSpec) error {
	bad := func(field string, err error) error {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, inField(field, err))
	}
	if err := CheckName(spec.Name); err != nil {
		return bad("name", err)
	}
	if err := CheckImageReference(spec.Image); err != nil {
		return bad("image", err)
	}
	if err := CheckPullPolicy(string(spec.PullPolicy)); err != nil {
		return bad("pull_policy", err)
	}
	if err := CheckArgs(spec.Entrypoint); err != nil {
		return bad("entrypoint", err)
	}
	if err := CheckArgs(spec.Command); err != nil {
		return bad("command", err)
	}
	if err := CheckEnv(spec.Env); err != nil {
		return bad("env", err)
	}
	if err := CheckEnv(spec.SecretEnv); err != nil {
		return bad("secret_env", err)
	}
	for k := range spec.SecretEnv {
		if _, ok := spec.Env[k]; ok {
			return fmt.Errorf("%w: secret_env %q is also set in env: set each variable in one of them", ErrInvalidSpec, k)
		}
	}
	if err := CheckLabels(spec.Labels); err != nil {
		return bad("labels", err)
	}
	if spec.WorkingDir != "" {
		if err := CheckAbsolutePath(spec.WorkingDir); err != nil {
			return bad("working_dir", err)
		}
	}
	if spec.Hostname != "" {
		if err := CheckHostname(spec.Hostname); err != nil {
			return bad("hostname", err)
		}
	}
	switch spec.NetworkMode {
	case "", NetworkBridge, NetworkHost, NetworkNone:
	default:
		return bad("network_mode", fmt.Errorf("must be bridge, host or none, got %q", spec.NetworkMode))
	}
	if spec.IPv4Address != "" && networkMode(spec) != NetworkBridge {
		return fmt.Errorf("%w: ipv4_address is an address on the bridge network: it needs network_mode bridge, not %s",
			ErrInvalidSpec, networkMode(spec))
	}
	if len(spec.Ports) > 0 && networkMode(spec) != NetworkBridge {
		return fmt.Errorf("%w: ports need network_mode bridge (with %s, publish nothing: the container's ports are %s)",
			ErrInvalidSpec, networkMode(spec), map[NetworkMode]string{NetworkHost: "the host's", NetworkNone: "unreachable"}[networkMode(spec)])
	}
	if err := CheckPorts(spec.Ports); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if err := CheckMounts(spec.Mounts); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	switch spec.Restart {
	case "", RestartNo, RestartAlways, RestartUnlessStopped:
	default:
		return bad("restart", fmt.Errorf("must be no, always or unless-stopped, got %q", spec.Restart))
	}
	if spec.StopSignal != "" {
		if err := CheckSignal(spec.StopSignal); err != nil {
			return bad("stop_signal", err)
		}
	}
	if err := CheckStopTimeoutSeconds(int64(spec.StopTimeout / time.Second)); err != nil || spec.StopTimeout < 0 {
		return bad("stop_timeout", fmt.Errorf("must be between 0 and %d seconds, got %s", MaxStopTimeoutSeconds, spec.StopTimeout))
	}
	if err := CheckResources(spec.Resources); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if err := checkSecurity(spec.Security); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if err := checkService(spec); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if hc := spec.Healthcheck; hc != nil {
		if len(hc.Command) == 0 {
			return bad("healthcheck.command", fmt.Errorf("must name a command"))
		}
		if err := CheckArgs(hc.Command); err != nil {
			return bad("healthcheck.command", err)
		}
		if hc.Retries != 0 {
			if err := CheckHealthRetries(int64(hc.Retries)); err != nil {
				return bad("healthcheck.retries", err)
			}
		}
		if hc.Interval < 0 || hc.Timeout < 0 || hc.StartPeriod < 0 {
			return bad("healthcheck", fmt.Errorf("durations must not be negative"))
		}
	}
	if err := CheckVerifySeconds(int64(spec.Upgrade.VerifySeconds)); err != nil {
		return bad("upgrade.verify_seconds", err)
	}
	if err := CheckKeepRevisions(int64(spec.Upgrade.KeepRevisions)); err != nil {
		return bad("upgrade.keep_revisions", err)
	}
	if err := checkLogOptions(spec.Log); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	return nil
}

// checkSecurity judges the security settings; the error names the field.
func checkSecurity(sec Security) error {
	for _, f := range []struct {
		field string
		caps  []string
	}{{"capabilities.add", sec.CapAdd}, {"capabilities.drop", sec.CapDrop}} {
		for i, c := range f.caps {
			if err := CheckCapability(c); err != nil {
				return inField(fmt.Sprintf("%s[%d]", f.field, i), err)
			}
		}
	}
	if sec.SeccompProfile != "" {
		if err := CheckSeccompProfile(sec.SeccompProfile); err != nil {
			return inField("seccomp_profile", err)
		}
	}
	return nil
}
