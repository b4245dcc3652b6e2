package provider

import (
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
)

// imageConfigModel is what pouch_image (resource and data source) reads of
// an image on the host.
type imageConfigModel struct {
	Digest              types.String `tfsdk:"digest"`
	ReferenceWithDigest types.String `tfsdk:"reference_with_digest"`
	Entrypoint          types.List   `tfsdk:"entrypoint"`
	Cmd                 types.List   `tfsdk:"cmd"`
	Env                 types.List   `tfsdk:"env"`
	WorkingDir          types.String `tfsdk:"working_dir"`
	User                types.String `tfsdk:"user"`
	Volumes             types.List   `tfsdk:"volumes"`
	Size                types.Int64  `tfsdk:"size"`
}

func imageConfigFromEngine(img engine.Image, diags *diag.Diagnostics) imageConfigModel {
	return imageConfigModel{
		Digest:              types.StringValue(img.Digest),
		ReferenceWithDigest: types.StringValue(img.PinnedReference),
		Entrypoint:          stringsToList(img.Config.Entrypoint, diags),
		Cmd:                 stringsToList(img.Config.Cmd, diags),
		Env:                 stringsToList(img.Config.Env, diags),
		WorkingDir:          types.StringValue(img.Config.WorkingDir),
		User:                types.StringValue(img.Config.User),
		Volumes:             stringsToList(img.Config.Volumes, diags),
		Size:                types.Int64Value(img.Size),
	}
}

// The descriptions of the attributes read from the image, the same for
// the resource and the data source.
var imageConfigDescriptions = map[string]string{
	"digest": "Content digest of the image's manifest (or multi-platform index), `sha256:...`.",
	"reference_with_digest": "The image's repository pinned to its digest, `registry.example:5000/app@sha256:...`, " +
		"stored on the host under that name too. Give it as a `pouch_container`'s `image`: the container runs exactly " +
		"this image, and upgrades in place when it changes.",
	"entrypoint":  "The image's `ENTRYPOINT`.",
	"cmd":         "The image's `CMD`.",
	"env":         "The image's environment, `NAME=value` entries.",
	"working_dir": "The image's working directory.",
	"user":        "The image's user.",
	"volumes":     "The image's `VOLUME` paths, sorted.",
	"size":        "Bytes of the image's content for its platform: manifest, config and compressed layers.",
}
