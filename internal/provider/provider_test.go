package provider

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	fwresource "github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// These tests need no containerd: they exercise the schema, the validators
// and the plan through the provider's protocol server, as Terraform does.

func TestProvider_schema(t *testing.T) {
	ctx := context.Background()
	p := New("test")()

	var meta provider.MetadataResponse
	p.Metadata(ctx, provider.MetadataRequest{}, &meta)
	if meta.TypeName != "pouch" || meta.Version != "test" {
		t.Fatalf("metadata: %+v", meta)
	}

	var presp provider.SchemaResponse
	p.Schema(ctx, provider.SchemaRequest{}, &presp)
	if presp.Diagnostics.HasError() {
		t.Fatalf("provider schema: %v", presp.Diagnostics)
	}
	if d := presp.Schema.ValidateImplementation(ctx); d.HasError() {
		t.Fatalf("provider schema implementation: %v", d)
	}
	for name, a := range presp.Schema.Attributes {
		if a.GetDescription() == "" {
			t.Errorf("provider attribute %s has no description", name)
		}
	}

	resources := p.Resources(ctx)
	if len(resources) != 3 {
		t.Fatalf("%d resources", len(resources))
	}
	var types []string
	for _, newResource := range resources {
		types = append(types, checkResourceSchema(t, newResource()))
	}
	if strings.Join(types, " ") != "pouch_container pouch_volume pouch_image" {
		t.Errorf("resource types %v", types)
	}
}

// checkResourceSchema checks r's schema and returns its type name.
func checkResourceSchema(t *testing.T, r fwresource.Resource) string {
	t.Helper()
	ctx := context.Background()
	var rmeta fwresource.MetadataResponse
	r.Metadata(ctx, fwresource.MetadataRequest{ProviderTypeName: "pouch"}, &rmeta)
	var rresp fwresource.SchemaResponse
	r.Schema(ctx, fwresource.SchemaRequest{}, &rresp)
	if rresp.Diagnostics.HasError() {
		t.Fatalf("resource schema: %v", rresp.Diagnostics)
	}
	if d := rresp.Schema.ValidateImplementation(ctx); d.HasError() {
		t.Fatalf("resource schema implementation: %v", d)
	}
	for name, a := range rresp.Schema.Attributes {
		desc := a.GetDescription()
		if desc == "" && name != "timeouts" {
			t.Errorf("resource attribute %s has no description", name)
		}
		// Every configurable attribute says what a change does.
		if (a.IsOptional() || a.IsRequired()) && name != "timeouts" &&
			!strings.Contains(desc, "in place") && !strings.Contains(desc, "replaces") {
			t.Errorf("%s: description of %s does not say whether a change updates in place or replaces: %q",
				rmeta.TypeName, name, desc)
		}
	}
	return rmeta.TypeName
}

// Configure does no I/O: an address or host that is unknown at plan time,
// absent, or names nothing that exists configures without a diagnostic.
func TestProvider_configureUnknownAndDefaults(t *testing.T) {
	ctx := context.Background()
	srv := protoServer(t)
	schema, err := srv.GetProviderSchema(ctx, &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cfgType, ok := schema.Provider.ValueType().(tftypes.Object)
	if !ok {
		t.Fatalf("provider schema type %v", schema.Provider.ValueType())
	}
	for name, set := range map[string]map[string]any{
		"unknown":      {"address": tftypes.UnknownValue},
		"null":         {},
		"set":          {"address": "unix:///tmp/does-not-exist.sock"},
		"host unknown": {"host": tftypes.UnknownValue},
		"host set":     {"host": "ssh://root@192.0.2.1:22", "remote_address": "/run/containerd/containerd.sock"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(envAddress, "")
			t.Setenv(envHost, "")
			vals := map[string]tftypes.Value{}
			for k, typ := range cfgType.AttributeTypes {
				vals[k] = tftypes.NewValue(typ, nil)
			}
			for k, v := range set {
				vals[k] = tftypes.NewValue(tftypes.String, v)
			}
			cfg, err := tfprotov6.NewDynamicValue(cfgType, tftypes.NewValue(cfgType, vals))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.ConfigureProvider(ctx, &tfprotov6.ConfigureProviderRequest{Config: &cfg})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Diagnostics) != 0 {
				t.Fatalf("configure (no I/O, unknowns allowed) reported %v", diagText(resp.Diagnostics))
			}
		})
	}
}

func TestProvider_stringOr(t *testing.T) {
	t.Setenv(envAddress, "/env.sock")
	for _, tc := range []struct {
		v    string
		null bool
		want string
	}{
		{null: true, want: "/env.sock"},
		{v: "", want: "/env.sock"},
		{v: "/cfg.sock", want: "/cfg.sock"},
	} {
		v := typesString(tc.v, tc.null)
		if got := stringOr(v, "/env.sock", "/default.sock"); got != tc.want {
			t.Errorf("stringOr(%v) = %q, want %q", v, got, tc.want)
		}
	}
	if got := stringOr(typesString("", true), "", "/default.sock"); got != "/default.sock" {
		t.Errorf("fallback to default: %q", got)
	}
}

// protoServer returns the provider's protocol 6 server.
func protoServer(t *testing.T) tfprotov6.ProviderServer {
	t.Helper()
	srv, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func diagText(diags []*tfprotov6.Diagnostic) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(d.Summary + ": " + d.Detail)
		if d.Attribute != nil {
			b.WriteString(" [" + d.Attribute.String() + "]")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestAccProvider_unreachable needs terraform but no containerd: a socket
// that does not exist is reported at once, as one clear diagnostic.
func TestAccProvider_unreachable(t *testing.T) {
	start := time.Now()
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Factories(),
		Steps: []resource.TestStep{
			{
				Config: `
provider "pouch" {
  address = "unix:///tmp/does-not-exist.sock"
}

resource "pouch_container" "test" {
  name  = "acc-unreachable"
  image = "docker.io/pouchtest/acc-unreachable:v1"
}
`,
				ExpectError: regexp.MustCompile(`containerd is not reachable(.|\n)*/tmp/does-not-exist.sock`),
			},
		},
	})
	if d := time.Since(start); d > time.Minute {
		t.Errorf("took %v: an unreachable daemon must fail fast", d)
	}
}
