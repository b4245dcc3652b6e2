package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// engineSubsystem is the tflog subsystem of the engine's messages
// (TF_LOG_PROVIDER_POUCH_ENGINE=debug shows them on their own).
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
	ctx = tflog.NewSubsystem(ctx, engineSubsystem, tflog.WithRootFields())
	ctx = tflog.SubsystemMaskFieldValuesWithFieldKeys(ctx, engineSubsystem, sensitiveFieldKeys...)
	return ctx
}
