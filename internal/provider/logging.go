package provider

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// engineSubsystem is the tflog subsystem of the engine's messages
// (TF_LOG_PROVIDER_POUCH_ENGINE=debug sets its level on its own).
const engineSubsystem = "engine"

// sensitiveFieldKeys are log field keys whose values are never written: a
// container's environment commonly carries secrets.
var sensitiveFieldKeys = []string{"env", "Env", "environment"}

// engineLogger adapts engine.Logger to tflog. The context it receives is the
// one the resource passed to the engine, prepared by withEngineLogging.
type engineLogger struct{}

var _ engine.Logger = engineLogger{}

func (engineLogger) Debug(ctx context.Context, msg string, fields map[string]any) {
	tflog.SubsystemDebug(ctx, engineSubsystem, msg, fields)
}

func (engineLogger) Info(ctx context.Context, msg string, fields map[string]any) {
	tflog.SubsystemInfo(ctx, engineSubsystem, msg, fields)
}

// withEngineLogging returns ctx with the engine's tflog subsystem and the
// masking of sensitive fields in place; every call into the engine uses it.
func withEngineLogging(ctx context.Context) context.Context {
	ctx = tflog.MaskFieldValuesWithFieldKeys(ctx, sensitiveFieldKeys...)
	ctx = tflog.NewSubsystem(ctx, engineSubsystem, tflog.WithRootFields(),
		tflog.WithLevelFromEnv(providerLogEnv, engineSubsystem))
	ctx = tflog.SubsystemMaskFieldValuesWithFieldKeys(ctx, engineSubsystem, sensitiveFieldKeys...)
	return ctx
}

// Log level variables. Terraform reads the first two and keeps a plugin's log
// lines at that level; the plugin's own loggers read the others, and emit
// everything (trace) when theirs is unset.
const (
	terraformLogEnv         = "TF_LOG"
	terraformProviderLogEnv = "TF_LOG_PROVIDER"
	sdkLogEnv               = "TF_LOG_SDK" // the framework's and the protocol's loggers
	providerLogEnv          = "TF_LOG_PROVIDER_POUCH"
)

// PluginLogDefaults returns the log level variables the plugin should set in
// its own environment before it serves, given the environment Terraform
// started it with (getenv).
//
// The plugin framework logs every request at trace level by default and
// Terraform drops what it was not asked for: with TF_LOG and TF_LOG_PROVIDER
// unset, every line. Formatting those lines took half of the provider's CPU
// in a plan of 200 containers (see BENCHMARKS.md). So the plugin's loggers
// default to the level Terraform keeps: off when no level is asked for, the
// asked level otherwise. A variable that is already set is never changed, and
// TF_LOG=JSON or an unknown level keeps the plugin's default (trace).
func PluginLogDefaults(getenv func(string) string) map[string]string {
	level := strings.TrimSpace(getenv(terraformProviderLogEnv))
	if level == "" {
		level = strings.TrimSpace(getenv(terraformLogEnv))
	}
	switch level = strings.ToLower(level); level {
	case "":
		level = "off"
	case "trace", "debug", "info", "warn", "error":
	default:
		return nil
	}
	defaults := map[string]string{}
	for _, name := range []string{sdkLogEnv, providerLogEnv} {
		if getenv(name) == "" {
			defaults[name] = level
		}
	}
	return defaults
}
