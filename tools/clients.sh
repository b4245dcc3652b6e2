#!/usr/bin/env bash
# The Terraform and OpenTofu clients the tests run on besides the terraform
# on PATH: terraform 1.5.7 and OpenTofu 1.6.3, built with `go install` from
# the Go module proxy (later OpenTofu releases carry replace directives that
# `go install` refuses). Each goes into a directory of its own under
# bin/clients/, never onto PATH, where it would shadow the main terraform.
# Idempotent: a client already built is kept.
#
# Prints, one per line, the variables the tests read:
#   TF_ACC_TERRAFORM_1_5_PATH=<path>
#   TF_ACC_TOFU_PATH=<path>
# Progress goes to stderr.
set -euo pipefail

cd "$(dirname "$0")/.."
dir=$(pwd)/bin/clients
log() { echo "clients: $*" >&2; }

# build NAME MODULE@VERSION BINARY: go install MODULE@VERSION into
# bin/clients/NAME, unless BINARY is there and answers.
build() {
  local name=$1 module=$2 binary=$3
  local out="$dir/$name/$binary"
  if [ -x "$out" ] && CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null "$out" version >/dev/null 2>&1; then
    log "$name present"
  else
    log "building $name with go install $module (a few minutes, once)"
    mkdir -p "$dir/$name"
    GOBIN="$dir/$name" GOFLAGS=-buildvcs=false go install "$module" >&2
  fi
  echo "$out"
}

tf15=$(build terraform-1.5.7 github.com/hashicorp/terraform@v1.5.7 terraform)
tofu=$(build tofu-1.6.3 github.com/opentofu/opentofu/cmd/tofu@v1.6.3 tofu)
echo "TF_ACC_TERRAFORM_1_5_PATH=$tf15"
echo "TF_ACC_TOFU_PATH=$tofu"
