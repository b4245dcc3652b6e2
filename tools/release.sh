#!/usr/bin/env bash
# Builds a release of terraform-provider-pouch with goreleaser (.goreleaser.yml):
# the zips, the registry manifest, SHA256SUMS and its GPG signature, in the
# layout a provider registry serves.
#
#   tools/release.sh             a snapshot (the default): nothing is published
#   tools/release.sh --publish   a real release of the vX.Y.Z tag at HEAD: a
#                                draft on GitHub, to publish once this script's
#                                checks pass (needs GITHUB_TOKEN, GPG_FINGERPRINT)
#   tools/release.sh --install   only install goreleaser; print its path
#
# Environment:
#   POUCH_RELEASE_DIR      output directory (default: dist/ in the repository);
#                          emptied first, so it must be empty, absent or an
#                          earlier release
#   POUCH_VERSION          the snapshot's version (default: the next patch
#                          version after the last tag, with -dev)
#   POUCH_RELEASE_TARGETS  snapshot only: the targets to build instead of
#                          all four, e.g. "linux_amd64" (the acceptance test)
#   GPG_FINGERPRINT        the signing key, in the keyring of GNUPGHOME (or
#                          ~/.gnupg). Unset: a snapshot is signed with a
#                          throwaway key made for this run
#   GORELEASER             a goreleaser v2.15.1 binary to use (default: the
#                          one in $(go env GOPATH)/bin, installed if missing)
#
# Besides goreleaser's artifacts the directory gets the registry manifest
# (<project>_<version>_manifest.json, listed in SHA256SUMS) and the signing
# key's armored public key (<project>_<version>_signing_key.asc), which a
# registry serves in signing_keys. Idempotent. Progress goes to stderr;
# stdout carries only the last line: the output directory.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

readonly goreleaser_version=v2.15.1
readonly project=terraform-provider-pouch

log() { echo "release: $*" >&2; }
die() { log "$*"; exit 1; }

mode=snapshot
case "${1:-}" in
  "") ;;
  --publish) mode=publish ;;
  --install) mode=install ;;
  *) die "usage: tools/release.sh [--publish | --install]" ;;
esac
[ $# -le 1 ] || die "usage: tools/release.sh [--publish | --install]"

# --- goreleaser ---------------------------------------------------------------
# goreleaser --version prints "GitVersion:    v2.15.1" among its lines.
is_wanted_goreleaser() {
  [ -x "$1" ] && "$1" --version 2>/dev/null | grep -Eq "^GitVersion:[[:space:]]+${goreleaser_version}\$"
}

if [ -n "${GORELEASER:-}" ]; then
  goreleaser=$(command -v "$GORELEASER" || true)
  [ -n "$goreleaser" ] || die "GORELEASER=$GORELEASER is not an executable"
  is_wanted_goreleaser "$goreleaser" || die "$goreleaser is not goreleaser $goreleaser_version"
else
  gobin=$(go env GOBIN)
  if [ -z "$gobin" ]; then
    gopath=$(go env GOPATH)
    gobin="${gopath%%:*}/bin"
  fi
  goreleaser="$gobin/goreleaser"
  if ! is_wanted_goreleaser "$goreleaser"; then
    log "installing goreleaser $goreleaser_version with go install (a few minutes)"
    GOFLAGS=-buildvcs=false go install "github.com/goreleaser/goreleaser/v2@$goreleaser_version" >&2
    is_wanted_goreleaser "$goreleaser" || die "go install did not give $goreleaser $goreleaser_version"
  fi
fi
if [ "$mode" = install ]; then
  echo "$goreleaser"
  exit 0
fi

# A release is the tag's, of every target, signed with the project's key.
if [ "$mode" = publish ]; then
  [ -n "${GPG_FINGERPRINT:-}" ] || die "a release is signed with the project's key: set GPG_FINGERPRINT"
  [ -n "${GITHUB_TOKEN:-}" ] || die "a release publishes to GitHub: set GITHUB_TOKEN"
  [ -z "${POUCH_VERSION:-}" ] || die "a release's version is its tag: unset POUCH_VERSION"
  [ -z "${POUCH_RELEASE_TARGETS:-}" ] || die "POUCH_RELEASE_TARGETS is for snapshots: a release builds every target"
fi

command -v gpg >/dev/null 2>&1 || die "gpg is missing (Debian package gnupg)"

# --- output directory -----------------------------------------------------------
out="${POUCH_RELEASE_DIR:-$repo/dist}"
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
case "$out" in
  / | "$HOME" | "$repo") die "refusing to empty $out: set POUCH_RELEASE_DIR to a directory of its own" ;;
  *[\"\\]*) die "POUCH_RELEASE_DIR must not hold a quote or a backslash: $out" ;;
esac
# goreleaser --clean removes the directory: only an empty one or an earlier
# release (goreleaser writes metadata.json) may be emptied.
if [ -n "$(ls -A "$out")" ] && [ ! -f "$out/metadata.json" ]; then
  die "$out is neither empty nor an earlier release: refusing to empty it"
fi

tmp=$(mktemp -d)
throwaway_home=""
cleanup() {
  if [ -n "$throwaway_home" ]; then
    GNUPGHOME="$throwaway_home" gpgconf --kill all >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- configuration ----------------------------------------------------------------
# goreleaser's dist directory is set in the configuration only: run it with
# a copy of .goreleaser.yml that names $out (and, for POUCH_RELEASE_TARGETS,
# builds only those targets).
config="$tmp/goreleaser.yml"
cp .goreleaser.yml "$config"
if [ -n "${POUCH_RELEASE_TARGETS:-}" ]; then
  targets=""
  for target in $POUCH_RELEASE_TARGETS; do
    [[ "$target" =~ ^(linux|darwin)_(amd64|arm64)$ ]] || die "POUCH_RELEASE_TARGETS: $target is not one of linux|darwin _ amd64|arm64"
    targets="${targets:+$targets, }$target"
  done
  grep -Eq '^    goos: \[linux, darwin\]$' "$config" && grep -Eq '^    goarch: \[amd64, arm64\]$' "$config" ||
    die ".goreleaser.yml lacks the goos/goarch lines that POUCH_RELEASE_TARGETS replaces"
  sed -i -e '/^    goarch: \[amd64, arm64\]$/d' \
    -e "s/^    goos: \\[linux, darwin\\]\$/    targets: [$targets]/" "$config"
  log "building only $targets"
fi
printf '\ndist: "%s"\n' "$out" >>"$config"

# --- signing key ------------------------------------------------------------------
if [ -z "${GPG_FINGERPRINT:-}" ]; then
  throwaway_home="$tmp/gnupg"
  mkdir -m 700 "$throwaway_home"
  export GNUPGHOME="$throwaway_home"
  gpg --batch --quiet --generate-key >&2 <<'EOF'
%no-protection
Key-Type: RSA
Key-Length: 3072
Key-Usage: sign
Name-Real: pouch snapshot (throwaway key)
Name-Email: snapshot@pouch.invalid
Expire-Date: 0
%commit
EOF
  GPG_FINGERPRINT=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
  [ -n "$GPG_FINGERPRINT" ] || die "could not make a throwaway signing key"
fi
export GPG_FINGERPRINT
gpg --batch --list-secret-keys "$GPG_FINGERPRINT" >/dev/null 2>&1 ||
  die "no secret key $GPG_FINGERPRINT in the keyring${GNUPGHOME:+ of GNUPGHOME=$GNUPGHOME}"

# --- build ----------------------------------------------------------------------------
# goreleaser reads the commit, its time (the files' mtime, for a reproducible
# zip) and the tags from git, but gives them all up for placeholders when
# the clone has no remote. Name one for this run only, in the environment
# (.git/config is left alone): goreleaser only prints its URL.
if [ -z "$(git remote 2>/dev/null)" ]; then
  n=${GIT_CONFIG_COUNT:-0}
  export "GIT_CONFIG_KEY_$n=remote.origin.url" "GIT_CONFIG_VALUE_$n=https://github.com/pouch/terraform-provider-pouch.git"
  export GIT_CONFIG_COUNT=$((n + 1))
fi
args=(release --clean --config "$config")
if [ "$mode" = snapshot ]; then
  args+=(--snapshot)
  log "snapshot${POUCH_VERSION:+ $POUCH_VERSION} into $out"
else
  # A draft: goreleaser uploads before the checks below can run, so the
  # release goes public only when a maintainer publishes the draft.
  args+=(--draft)
  log "draft release of $(git describe --tags --exact-match 2>/dev/null || echo '(no tag at HEAD)') into $out"
fi
"$goreleaser" "${args[@]}" >&2

version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' "$out/metadata.json")
[ -n "$version" ] || die "no version in $out/metadata.json"
prefix="${project}_${version}"

# The manifest is listed in SHA256SUMS (checksum.extra_files) and published
# with the release (release.extra_files); lay it beside the zips too.
cp terraform-registry-manifest.json "$out/${prefix}_manifest.json"
gpg --batch --armor --export "$GPG_FINGERPRINT" >"$out/${prefix}_signing_key.asc"
[ -s "$out/${prefix}_signing_key.asc" ] || die "could not export the public key of $GPG_FINGERPRINT"

# Check what a registry client checks: every file of SHA256SUMS is there with
# that sum, and the signature is the key's.
(cd "$out" && sha256sum --quiet --strict -c "${prefix}_SHA256SUMS") >&2 ||
  die "the files of $out do not match ${prefix}_SHA256SUMS"
gpg --batch --quiet --verify "$out/${prefix}_SHA256SUMS.sig" "$out/${prefix}_SHA256SUMS" 2>/dev/null ||
  die "${prefix}_SHA256SUMS.sig is not a good signature of ${prefix}_SHA256SUMS"
zips=$(grep -c '\.zip$' "$out/${prefix}_SHA256SUMS")
log "version $version: $zips zip(s), SHA256SUMS signed by $GPG_FINGERPRINT"

if [ -n "$throwaway_home" ]; then
  cat >&2 <<EOF

  ************************************************************************
  *  THIS SNAPSHOT IS SIGNED WITH A THROWAWAY KEY, made for this run and  *
  *  deleted with it: no user can trust it. Its public key is in          *
  *  ${prefix}_signing_key.asc
  *  for a local registry to serve. Real releases: set GPG_FINGERPRINT.   *
  ************************************************************************

EOF
fi

if [ "$mode" = publish ]; then
  log "the checks passed: publish the draft release of $version on GitHub"
fi

echo "$out"
