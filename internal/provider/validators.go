package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/distribution/reference"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// containerNameRegexp is the rule for container names (they are containerd
// container IDs and Terraform import IDs).
var containerNameRegexp = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

const containerNameRule = "must be 1 to 128 characters, start with a letter or digit, " +
	"and contain only letters, digits, '_', '.' and '-'"

// reservedLabelPrefix is the label namespace the engine uses for its own
// bookkeeping on containers.
const reservedLabelPrefix = "io.pouch."

// imageReference validates that a string is a plausible image reference,
// e.g. "busybox:1.36", "docker.io/library/alpine" or
// "registry.example:5000/app@sha256:<digest>".
type imageReference struct{}

var _ validator.String = imageReference{}

func (imageReference) Description(context.Context) string {
	return "value must be an image reference such as `busybox:1.36` or `registry.example:5000/app@sha256:...`"
}

func (v imageReference) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (imageReference) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if msg := checkImageReference(req.ConfigValue.ValueString()); msg != "" {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid image reference",
			fmt.Sprintf("Attribute %s %s.", req.Path, msg))
	}
}

// checkImageReference returns why ref is not a usable image reference, or ""
// when it is one.
func checkImageReference(ref string) string {
	if ref == "" {
		return "must not be empty"
	}
	if strings.IndexFunc(ref, unicode.IsSpace) >= 0 {
		return fmt.Sprintf("must not contain whitespace, got: %q", ref)
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return fmt.Sprintf("must be an image reference such as \"busybox:1.36\" or "+
			"\"registry.example:5000/app@sha256:<digest>\", got %q: %v", ref, err)
	}
	return ""
}

// noPrefix validates that a string (here: a label key) does not start with a
// reserved prefix.
type noPrefix struct {
	prefix string
}

var _ validator.String = noPrefix{}

func (v noPrefix) Description(context.Context) string {
	return fmt.Sprintf("value must not start with %q (reserved)", v.prefix)
}

func (v noPrefix) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v noPrefix) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if s := req.ConfigValue.ValueString(); strings.HasPrefix(s, v.prefix) {
		resp.Diagnostics.AddAttributeError(req.Path, "Reserved label key",
			fmt.Sprintf("Attribute %s: label key %q starts with %q, which is reserved for pouch's own labels.",
				req.Path, s, v.prefix))
	}
}
