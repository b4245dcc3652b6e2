package provider

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// uploadModel is one element of uploads.
type uploadModel struct {
	File          types.String `tfsdk:"file"`
	Content       types.String `tfsdk:"content"`
	ContentBase64 types.String `tfsdk:"content_base64"`
	Source        types.String `tfsdk:"source"`
	Mode          types.String `tfsdk:"mode"`
	SHA256        types.String `tfsdk:"sha256"`
}

var uploadAttrTypes = map[string]attr.Type{"file": types.StringType, "content": types.StringType,
	"content_base64": types.StringType, "source": types.StringType, "mode": types.StringType, "sha256": types.StringType}

// exactlyOneUploadSource: an upload has content, content_base64 or source.
func exactlyOneUploadSource() validator.String {
	return stringvalidator.ExactlyOneOf(path.MatchRelative().AtParent().AtName("content"),
		path.MatchRelative().AtParent().AtName("content_base64"), path.MatchRelative().AtParent().AtName("source"))
}

var (
	base64Validator = stringRule(func(s string) error {
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			return fmt.Errorf("must be base64 (as filebase64() gives): %v", err)
		}
		return nil
	}, "Invalid base64", "value must be base64")
	uploadModeValidator = stringRule(func(s string) error {
		mode, err := parseUploadMode(s)
		if err != nil {
			return err
		}
		return engine.CheckUploadMode(mode)
	}, "Invalid mode", "value must be permission bits in octal, such as 0640")
)

// parseUploadMode reads permission bits in octal; "" is 0 (the default).
func parseUploadMode(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("must be permission bits in octal, such as \"0640\", got %q", s)
	}
	return uint32(m), nil
}

// uploadBytes is the content an upload asks for: ok is false while it is
// not known (a value or a source file not there yet, at plan).
func uploadBytes(u uploadModel) (data []byte, ok bool, err error) {
	switch {
	case u.Content.IsUnknown() || u.ContentBase64.IsUnknown() || u.Source.IsUnknown():
		return nil, false, nil
	case !u.Content.IsNull():
		return []byte(u.Content.ValueString()), true, nil
	case !u.ContentBase64.IsNull():
		b, err := base64.StdEncoding.DecodeString(u.ContentBase64.ValueString())
		return b, err == nil, err
	case !u.Source.IsNull():
		info, err := os.Stat(u.Source.ValueString())
		if err == nil && info.Size() > engine.MaxUploadBytes {
			return nil, false, fmt.Errorf("%s is %d bytes, more than the %d an upload may have: mount a volume or a bind "+
				"mount for bigger files", u.Source.ValueString(), info.Size(), engine.MaxUploadBytes)
		}
		b, err := os.ReadFile(u.Source.ValueString())
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, err
		}
		return b, err == nil, err
	}
	return nil, false, nil
}

// uploadSHA256 plans an upload's sha256 from its content, so that a new
// content (a source file that changed included) is a planned change.
type uploadSHA256 struct{}

func (uploadSHA256) Description(context.Context) string {
	return "The SHA-256 of the upload's content, or of its source file."
}

func (m uploadSHA256) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (uploadSHA256) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.Plan.Raw.IsNull() {
		return
	}
	var u uploadModel
	if d := req.Plan.GetAttribute(ctx, req.Path.ParentPath(), &u); d.HasError() {
		return
	}
	data, ok, _ := uploadBytes(u)
	if !ok {
		resp.PlanValue = types.StringUnknown() // read at apply
		return
	}
	sum := sha256.Sum256(data)
	resp.PlanValue = types.StringValue(hex.EncodeToString(sum[:]))
}

// uploadsSpec are the engine's uploads of the list l, their contents read.
//
// A source file is not read here: its upload is what its sha256 says (the
// state's, or the plan's), which is all a comparison of specs needs;
// readUploadSources reads the files at apply.
func uploadsSpec(ctx context.Context, l types.List, diags *diag.Diagnostics) []engine.Upload {
	if l.IsNull() || l.IsUnknown() {
		return nil
	}
	var us []uploadModel
	diags.Append(l.ElementsAs(ctx, &us, false)...)
	out := make([]engine.Upload, 0, len(us))
	for i, u := range us {
		mode, err := parseUploadMode(knownString(u.Mode))
		if err != nil {
			diags.AddAttributeError(path.Root("uploads").AtListIndex(i).AtName("mode"), "Invalid mode", err.Error())
		}
		up := engine.Upload{File: knownString(u.File), Mode: mode, SHA256: knownString(u.SHA256)}
		if u.Source.IsNull() {
			// Inline, or read back without a content (the file on the
			// host serves): nil then.
			data, _, err := uploadBytes(u)
			if err != nil {
				diags.AddAttributeError(path.Root("uploads").AtListIndex(i), "Cannot read the upload",
					fmt.Sprintf("The content of the upload to %s cannot be read: %v.", up.File, err))
			}
			up.Content = data
		}
		out = append(out, up)
	}
	return out
}

// readUploadSources reads the source files of spec's uploads, planned as
// the list planned, before an apply changes anything. A file whose bytes
// are not those the plan read (it changed since) is refused: the plan said
// which bytes by their sha256.
func readUploadSources(ctx context.Context, spec *engine.ContainerSpec, planned types.List, diags *diag.Diagnostics) {
	if planned.IsNull() || planned.IsUnknown() {
		return
	}
	var us []uploadModel
	diags.Append(planned.ElementsAs(ctx, &us, false)...)
	for i := range spec.Uploads {
		if i >= len(us) || us[i].Source.IsNull() {
			continue
		}
		data, _, err := uploadBytes(us[i])
		if err != nil {
			diags.AddAttributeError(path.Root("uploads").AtListIndex(i), "Cannot read the upload",
				fmt.Sprintf("The content of the upload to %s cannot be read: %v.", spec.Uploads[i].File, err))
			continue
		}
		if planned := us[i].SHA256; !planned.IsNull() && !planned.IsUnknown() {
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != planned.ValueString() {
				diags.AddAttributeError(path.Root("uploads").AtListIndex(i).AtName("source"), "The upload changed since the plan",
					fmt.Sprintf("The file to upload to %s does not hold what the plan read (its sha256 differs): plan again.",
						spec.Uploads[i].File))
				continue
			}
		}
		spec.Uploads[i].Content = data
	}
}

// uploadsToList is the list of uploads read back; prior supplies their
// contents (which the host does not give back) where the file and the
// content's SHA-256 are the same.
func uploadsToList(ctx context.Context, uploads []engine.Upload, prior types.List, diags *diag.Diagnostics) types.List {
	elemType := types.ObjectType{AttrTypes: uploadAttrTypes}
	if len(uploads) == 0 {
		return emptyListOr(prior, elemType)
	}
	var before []uploadModel
	if !prior.IsNull() && !prior.IsUnknown() {
		diags.Append(prior.ElementsAs(ctx, &before, false)...)
	}
	out := make([]uploadModel, 0, len(uploads))
	for i, u := range uploads {
		m := uploadModel{File: types.StringValue(u.File), Content: types.StringNull(), ContentBase64: types.StringNull(),
			Source: types.StringNull(), Mode: types.StringNull(), SHA256: types.StringValue(u.SHA256)}
		if i < len(before) && before[i].File.ValueString() == u.File {
			p := before[i]
			if p.SHA256.IsUnknown() || p.SHA256.ValueString() == u.SHA256 {
				m.Content, m.ContentBase64, m.Source = p.Content, p.ContentBase64, p.Source
			}
			m.Mode = p.Mode
		}
		if mode, err := parseUploadMode(m.Mode.ValueString()); m.Mode.IsNull() || err != nil || cmp.Or(mode, 0o644) != u.Mode {
			m.Mode = types.StringNull()
			if u.Mode != 0o644 {
				m.Mode = types.StringValue(fmt.Sprintf("%04o", u.Mode))
			}
		}
		out = append(out, m)
	}
	l, d := types.ListValueFrom(ctx, elemType, out)
	diags.Append(d...)
	return l
}
