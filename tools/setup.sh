#!/usr/bin/env bash
# Idempotent host set-up for building, testing and demonstrating pouch.
#
#   - installs the Debian packages the tests and the demo need (only the
#     missing ones; `apt-get update` runs at most once);
#   - finds a terraform binary ($TERRAFORM, else the one on PATH, else builds
#     terraform v1.5.7 with `go install`, which works offline through the Go
#     module proxy);
#   - links it as bin/terraform in the repository (so make and the docs
#     generator can put bin/ on PATH) and prints, as its last line,
#     TF_ACC_TERRAFORM_PATH=<absolute path>.
#
# Progress goes to stderr; stdout carries only that last line.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

log() { echo "setup: $*" >&2; }

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  SUDO=()
fi

# --- Debian packages --------------------------------------------------------
# openssh-server: the tests' remote hosts, each an sshd of their own on
# loopback; the package's own service is not started (see policy-rc.d).
# tini: the static init of containers with init = true.
packages=(containerd runc busybox-static skopeo docker-registry containernetworking-plugins iptables gnupg openssh-server tini)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
    log "missing packages: ${missing[*]}; run as root (or install sudo) to install them"
    exit 1
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq >&2
  # Installing must not start services (sshd on port 22, a registry): the
  # tests start their own. policy-rc.d refuses invoke-rc.d's starts.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 0755 "$policy"
    trap '"${SUDO[@]}" rm -f "$policy"' EXIT
  fi
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if [ -n "$policy" ]; then
    "${SUDO[@]}" rm -f "$policy"
    trap - EXIT
  fi
else
  log "Debian packages present: ${packages[*]}"
fi

# --- terraform --------------------------------------------------------------
tf=""
if [ -n "${TERRAFORM:-}" ]; then
  tf=$(command -v "$TERRAFORM" || true)
  [ -n "$tf" ] || { log "TERRAFORM=$TERRAFORM is not an executable"; exit 1; }
elif tf=$(PATH="$PATH:$repo/bin" command -v terraform 2>/dev/null); then
  :
else
  gobin=$(go env GOBIN)
  if [ -z "$gobin" ]; then
    gopath=$(go env GOPATH)
    gobin="${gopath%%:*}/bin"
  fi
  if [ -x "$gobin/terraform" ]; then
    tf="$gobin/terraform"
  else
    log "terraform not found; building terraform v1.5.7 with go install (about 2 minutes)"
    GOFLAGS=-buildvcs=false go install github.com/hashicorp/terraform@v1.5.7 >&2
    tf="$gobin/terraform"
  fi
fi
tf=$(readlink -f "$tf")
CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null "$tf" version >&2

mkdir -p "$repo/bin"
if [ "$(readlink -f "$repo/bin/terraform" 2>/dev/null || true)" != "$tf" ]; then
  ln -sfn "$tf" "$repo/bin/terraform"
fi

# goreleaser v2.15.1, for make release and the install test (built once).
bash tools/release.sh --install >&2

echo "TF_ACC_TERRAFORM_PATH=$tf"
