package provider

import (
	"context"
	"os"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/pouch/terraform-provider-pouch/internal/engine"
	"github.com/pouch/terraform-provider-pouch/internal/remote"
)

// envHost names the remote host when the configuration does not.
const envHost = "POUCH_HOST"

// sshModel is the provider's ssh block.
type sshModel struct {
	PrivateKey            types.String `tfsdk:"private_key"`
	PrivateKeyFile        types.String `tfsdk:"private_key_file"`
	UseAgent              types.Bool   `tfsdk:"use_agent"`
	KnownHostsFile        types.String `tfsdk:"known_hosts_file"`
	HostKey               types.String `tfsdk:"host_key"`
	ProxyJump             types.String `tfsdk:"proxy_jump"`
	InsecureIgnoreHostKey types.Bool   `tfsdk:"insecure_ignore_host_key"`
}

// remoteAttributes are the provider's settings of a remote host.
func remoteAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"host": schema.StringAttribute{
			Description: "The containerd host to manage over SSH, `ssh://user@host:port` (port 22 by default); defaults to " +
				"the `" + envHost + "` environment variable. Left out, Terraform must run on the containerd host itself (the " +
				"local mode, Linux only). The provider connects once per configuration, uploads its own binary to the host " +
				"as an agent (once per version, under `data_root`, when the host runs the same system and architecture), and " +
				"the agent runs everything there: containerd calls, network namespaces, volumes, logs, and the whole " +
				"upgrade, which finishes or rolls back on the host even if the connection drops. Every other provider " +
				"setting (`namespace`, `data_root`, the bridge, ...) applies on the host. The user must be root on the host.",
			Optional:   true,
			Validators: []validator.String{stringRule(remoteHostRule, "Invalid host", "value must be an SSH URL")},
		},
		"remote_address": schema.StringAttribute{
			Description: "Path of the containerd socket on the remote `host`. Defaults to `" + engine.DefaultAddress + "`.",
			Optional:    true,
			Validators:  []validator.String{absolutePathValidator},
		},
		"agent_path": schema.StringAttribute{
			Description: "An agent installed on the remote `host` by hand: the path of the provider's binary for the host's " +
				"system there (from the same release). Needed only when the host runs another system or architecture than " +
				"the machine Terraform runs on; left out, the provider uploads itself.",
			Optional:   true,
			Validators: []validator.String{absolutePathValidator},
		},
		"ssh": schema.SingleNestedAttribute{
			Description: "How to authenticate to the remote `host` and how to trust it. The host's key is always checked, " +
				"against `host_key` or a known_hosts file; an unknown or changed key fails with the key the host offers and " +
				"how to pin it.",
			Optional: true,
			Attributes: map[string]schema.Attribute{
				"private_key": schema.StringAttribute{
					Description: "A private key (PEM or OpenSSH form, without passphrase), e.g. from a sensitive variable of " +
						"a Terraform Cloud workspace.",
					Optional:  true,
					Sensitive: true,
				},
				"private_key_file": schema.StringAttribute{
					Description: "A file holding a private key.",
					Optional:    true,
				},
				"use_agent": schema.BoolAttribute{
					Description: "Also offer the keys of the SSH agent at `SSH_AUTH_SOCK`.",
					Optional:    true,
				},
				"known_hosts_file": schema.StringAttribute{
					Description: "A known_hosts file to check the hosts' keys with; defaults to `~/.ssh/known_hosts` when " +
						"`host_key` is not set.",
					Optional: true,
				},
				"host_key": schema.StringAttribute{
					Description: "The host's public key, as in `/etc/ssh/ssh_host_ed25519_key.pub` (`ssh-ed25519 AAAA...`), " +
						"which pins it; or lines in known_hosts form (`[host]:port ssh-ed25519 AAAA...`), one per host, the " +
						"bastions' included. What a Terraform Cloud run, which has no known_hosts file, uses.",
					Optional: true,
				},
				"proxy_jump": schema.StringAttribute{
					Description: "Bastions to reach the host through, as OpenSSH's ProxyJump: `user@bastion:port`, several " +
						"separated by commas, in order. Their keys are checked as the host's is.",
					Optional: true,
				},
				"insecure_ignore_host_key": schema.BoolAttribute{
					Description: "Trust whatever key the hosts offer. **Insecure**: anyone between Terraform and the host " +
						"could then run containers as root on it, or read what the provider sends (secrets included). " +
						"Only for throwaway hosts on a network you control.",
					Optional: true,
				},
			},
		},
	}
}

// remoteHostRule judges the host URL.
func remoteHostRule(s string) error {
	_, err := remote.ParseHost(s)
	return err
}

// remoteConfig is the remote mode's configuration, or nil for the local
// mode.
func remoteConfig(ctx context.Context, cfg providerModel, version string, opts engine.Options, diags *diag.Diagnostics) *remote.Config {
	host := stringOr(cfg.Host, os.Getenv(envHost))
	if host == "" {
		return nil
	}
	opts.Address = stringOr(cfg.RemoteAddress, engine.DefaultAddress)
	rc := &remote.Config{Host: host, AgentPath: knownString(cfg.AgentPath), Engine: opts, Version: version}
	if !cfg.SSH.IsNull() && !cfg.SSH.IsUnknown() {
		var m sshModel
		diags.Append(cfg.SSH.As(ctx, &m, basetypes.ObjectAsOptions{})...)
		rc.SSH = remote.SSH{
			PrivateKey:            knownString(m.PrivateKey),
			PrivateKeyFile:        knownString(m.PrivateKeyFile),
			UseAgent:              m.UseAgent.ValueBool(),
			KnownHostsFile:        knownString(m.KnownHostsFile),
			HostKey:               knownString(m.HostKey),
			InsecureIgnoreHostKey: m.InsecureIgnoreHostKey.ValueBool(),
		}
		for _, j := range strings.Split(knownString(m.ProxyJump), ",") {
			if j = strings.TrimSpace(j); j != "" {
				rc.SSH.ProxyJump = append(rc.SSH.ProxyJump, j)
			}
		}
		if rc.SSH.InsecureIgnoreHostKey {
			diags.AddAttributeWarning(path.Root("ssh").AtName("insecure_ignore_host_key"), "Host keys are not checked",
				"ssh.insecure_ignore_host_key is true: the provider trusts any key the hosts offer, so anyone on the network "+
					"path could take the connection. Pin the host's key with ssh.host_key instead.")
		}
	}
	return rc
}
