package provider

import (
	"context"
	"fmt"
	"net/netip"
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

// volumeNameRule is the rule for volume names; they follow the container
// name rule (they are directory names under the data root).
const volumeNameRule = containerNameRule

// knownSignals are the signal names stop_signal accepts.
var knownSignals = []string{
	"SIGABRT", "SIGALRM", "SIGBUS", "SIGCHLD", "SIGCONT", "SIGFPE", "SIGHUP", "SIGILL", "SIGINT",
	"SIGIO", "SIGKILL", "SIGPIPE", "SIGPROF", "SIGPWR", "SIGQUIT", "SIGSEGV", "SIGSTKFLT",
	"SIGSTOP", "SIGSYS", "SIGTERM", "SIGTRAP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG",
	"SIGUSR1", "SIGUSR2", "SIGVTALRM", "SIGWINCH", "SIGXCPU", "SIGXFSZ",
}

// capabilityRegexp is the form of a Linux capability name, with or without
// the CAP_ prefix.
var capabilityRegexp = regexp.MustCompile(`^(CAP_)?[A-Z_]+$`)

// absolutePath validates that a string is an absolute, clean path.
type absolutePath struct{}

var _ validator.String = absolutePath{}

func (absolutePath) Description(context.Context) string { return "value must be an absolute path" }

func (v absolutePath) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (absolutePath) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if msg := checkAbsolutePath(req.ConfigValue.ValueString()); msg != "" {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid path",
			fmt.Sprintf("Attribute %s %s.", req.Path, msg))
	}
}

// checkAbsolutePath returns why p is not an absolute path, or "".
func checkAbsolutePath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("must be an absolute path, got %q", p)
	}
	if strings.ContainsRune(p, 0) {
		return "must not contain NUL"
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Sprintf("must not contain '..', got %q", p)
		}
	}
	return ""
}

// ipAddress validates an IPv4 or IPv6 address.
type ipAddress struct{}

var _ validator.String = ipAddress{}

func (ipAddress) Description(context.Context) string { return "value must be an IP address" }

func (v ipAddress) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (ipAddress) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := netip.ParseAddr(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid IP address",
			fmt.Sprintf("Attribute %s must be an IP address such as 127.0.0.1, got %q.", req.Path, req.ConfigValue.ValueString()))
	}
}

// ipv4CIDR validates an IPv4 network in CIDR notation.
type ipv4CIDR struct{}

var _ validator.String = ipv4CIDR{}

func (ipv4CIDR) Description(context.Context) string {
	return "value must be an IPv4 network in CIDR notation, e.g. 10.88.0.0/16"
}

func (v ipv4CIDR) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (ipv4CIDR) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil || !p.Addr().Is4():
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid subnet",
			fmt.Sprintf("Attribute %s must be an IPv4 network in CIDR notation such as 10.88.0.0/16, got %q.", req.Path, s))
	case p.Bits() > 30:
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid subnet",
			fmt.Sprintf("Attribute %s: network %q is too small for a bridge and containers; use a /30 or larger.", req.Path, s))
	}
}

// positiveFloat validates a float64 greater than zero.
type positiveFloat struct{}

var _ validator.Float64 = positiveFloat{}

func (positiveFloat) Description(context.Context) string { return "value must be greater than 0" }

func (v positiveFloat) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (positiveFloat) ValidateFloat64(_ context.Context, req validator.Float64Request, resp *validator.Float64Response) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if v := req.ConfigValue.ValueFloat64(); !(v > 0) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid value",
			fmt.Sprintf("Attribute %s must be greater than 0, got: %v.", req.Path, v))
	}
}

// seccompProfile validates "default", "unconfined" or an absolute path.
type seccompProfile struct{}

var _ validator.String = seccompProfile{}

func (seccompProfile) Description(context.Context) string {
	return `value must be "default", "unconfined" or the absolute path of a profile`
}

func (v seccompProfile) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (seccompProfile) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if s == "default" || s == "unconfined" || checkAbsolutePath(s) == "" {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid seccomp profile",
		fmt.Sprintf("Attribute %s must be \"default\", \"unconfined\" or the absolute path of a profile in "+
			"Docker's JSON format, got %q.", req.Path, s))
}

// bridgeNameRegexp is the rule for a Linux network interface name.
var bridgeNameRegexp = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$`)

const bridgeNameRule = "must be a network interface name: 1 to 15 characters, letters, digits, '_', '.' and '-'"
