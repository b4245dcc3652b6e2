package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	dockerconfig "github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config/configfile"
)

// Registries are how the engine reaches image registries: settings by
// registry, and the registries it reaches over plain HTTP. A registry on
// localhost (127.0.0.1, ::1, localhost) is reached over plain HTTP unless
// its settings name a CA file.
type Registries struct {
	Hosts []RegistryHost `json:"hosts,omitempty"`
	// Insecure are registries (host[:port]) served over plain HTTP.
	Insecure []string `json:"insecure,omitempty"`
}

// RegistryHost is one registry's settings.
type RegistryHost struct {
	// Address is the registry as image references name it: host[:port]
	// ("registry.example:5000", "ghcr.io", "docker.io").
	Address string `json:"address"`
	// Username and Password log in with HTTP basic auth, or for a token.
	// The password is a secret: the engine never logs it nor puts it in
	// an error.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// ConfigFile is a Docker config.json whose credentials for Address
	// serve instead: its auths, or the docker-credential-NAME helper that
	// its credHelpers or credsStore name, run where the engine runs.
	ConfigFile string `json:"config_file,omitempty"`
	// CAFile is a PEM file of the CA that signs the registry's
	// certificate, trusted besides the system's CAs.
	CAFile string `json:"ca_file,omitempty"`
}

// Redacted is r without its passwords, for what is shown.
func (r Registries) Redacted() Registries {
	out := Registries{Insecure: r.Insecure}
	for _, h := range r.Hosts {
		if h.Password != "" {
			h.Password = "(secret)"
		}
		out.Hosts = append(out.Hosts, h)
	}
	return out
}

// resolver is the registry client of a pull: containerd's, with the
// engine's registry settings.
func (e *Engine) resolver(ctx context.Context) remotes.Resolver {
	return docker.NewResolver(docker.ResolverOptions{Hosts: func(host string) ([]docker.RegistryHost, error) {
		return e.registryHosts(ctx, host)
	}})
}

// registryHosts are the endpoints of registry host, with their TLS and
// credentials.
func (e *Engine) registryHosts(ctx context.Context, host string) ([]docker.RegistryHost, error) {
	regs := e.opts.Registries
	i := slices.IndexFunc(regs.Hosts, func(h RegistryHost) bool { return h.Address == host })
	var opts dockerconfig.HostOptions
	switch {
	case slices.Contains(regs.Insecure, host):
		opts.DefaultScheme = "http"
	case i >= 0 && regs.Hosts[i].CAFile != "":
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(regs.Hosts[i].CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry %s: read ca_file: %w", host, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry %s: ca_file %s holds no PEM certificate", host, regs.Hosts[i].CAFile)
		}
		opts.DefaultScheme = "https"
		opts.DefaultTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	case docker.IsLocalhost(host):
		opts.DefaultScheme = "http"
	}
	if i >= 0 {
		opts.Credentials = credentialsFor(regs.Hosts[i])
	}
	return dockerconfig.ConfigureHosts(ctx, opts)(host)
}

// credentialsFor answers containerd's authorizer, which asks for the
// credentials of the host that challenged a request: h's, to h's own host
// only, so that a redirect to another host (a CDN, or worse) never gets
// them.
func credentialsFor(h RegistryHost) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		if host != h.Address && !(h.Address == "docker.io" && host == "registry-1.docker.io") {
			return "", "", nil
		}
		user, secret, err := registryCredentials(h)
		if err != nil {
			return "", "", &credentialsError{err: err}
		}
		return user, secret, nil
	}
}

// credentialsError is a failure to read a registry's credentials (its
// config file, or its credential helper).
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// registryCredentials are the username and secret for registry h: its
// own, or those its config file has (an identity token has no username).
func registryCredentials(h RegistryHost) (string, string, error) {
	if h.ConfigFile == "" {
		return h.Username, h.Password, nil
	}
	f, err := os.Open(h.ConfigFile)
	if err != nil {
		return "", "", fmt.Errorf("registry %s: read config_file: %w", h.Address, err)
	}
	defer f.Close()
	cf := configfile.New(h.ConfigFile)
	if err := cf.LoadFromReader(f); err != nil {
		return "", "", fmt.Errorf("registry %s: config_file %s is not a Docker config.json: %w", h.Address, h.ConfigFile, err)
	}
	key := h.Address
	if key == "docker.io" {
		key = "https://index.docker.io/v1/" // Docker Hub's key in config.json
	}
	ac, err := cf.GetAuthConfig(key)
	if err != nil {
		// The helper's own words, which never hold the secret it failed
		// to return.
		return "", "", fmt.Errorf("registry %s: the credentials of config_file %s: %w", h.Address, h.ConfigFile, err)
	}
	if ac.IdentityToken != "" {
		return "", ac.IdentityToken, nil
	}
	return ac.Username, ac.Password, nil
}

// pullError says why name could not be pulled (or looked up: verb) from
// its registry, and what to do. containerd's errors hold no credentials;
// err is kept for errors.Is.
func pullError(verb, name string, err error) error {
	host := "its registry"
	if named, perr := reference.ParseNormalizedNamed(name); perr == nil {
		host = reference.Domain(named)
	}
	msg := err.Error()
	var hint string
	var unknownCA x509.UnknownAuthorityError
	var wrongName x509.HostnameError
	var netErr *net.OpError
	var urlErr *url.Error
	var credErr *credentialsError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s image %q: %w", verb, name, err)
	case errors.As(err, &credErr) || strings.Contains(msg, "docker-credential-"):
		hint = fmt.Sprintf("the credentials of registry %s could not be read from its config_file: if it names a "+
			"credential helper, install docker-credential-NAME on the PATH of the containerd host", host)
	case errors.As(err, &unknownCA), strings.Contains(msg, "certificate signed by unknown authority"):
		hint = fmt.Sprintf("the certificate of registry %s is not signed by a CA this host trusts: give the CA's PEM file as "+
			"ca_file in a registry_auth entry for %q", host, host)
	case errors.As(err, &wrongName), strings.Contains(msg, "certificate is valid for"), strings.Contains(msg, "doesn't contain any IP SANs"):
		hint = fmt.Sprintf("the certificate of registry %s is not for that name: use the name the certificate is for in the "+
			"image reference, or fix the registry's certificate", host)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		hint = fmt.Sprintf("registry %s answers over plain HTTP: list %q in insecure_registries if that is intended", host, host)
	case strings.Contains(msg, "401 Unauthorized") || strings.Contains(msg, "unauthorized") || strings.Contains(msg, "authorization failed"):
		hint = fmt.Sprintf("registry %s refused the credentials for %s: set, or correct, the registry_auth entry for %q "+
			"(username and password, or config_file)", host, name, host)
	case errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "short read") ||
		strings.Contains(msg, "connection reset"):
		hint = fmt.Sprintf("the connection to registry %s was lost in the middle of the pull; nothing was changed: "+
			"apply again once the registry is reachable", host)
	case strings.Contains(msg, "no match for platform"):
		hint = fmt.Sprintf("image %s has no manifest for the platform asked: choose one of the platforms it is built for", name)
	case errdefs.IsNotFound(err) || strings.Contains(msg, "not found"):
		hint = fmt.Sprintf("registry %s has no image %s: check the repository and the tag", host, name)
	case errors.As(err, &netErr) || errors.As(err, &urlErr) || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "no such host"):
		hint = fmt.Sprintf("registry %s cannot be reached from the containerd host: check its address and that it is up", host)
	default:
		return fmt.Errorf("%s image %q: %w", verb, name, err)
	}
	return fmt.Errorf("%s image %q: %s (%w)", verb, name, hint, err)
}
