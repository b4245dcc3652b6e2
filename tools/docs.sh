#!/usr/bin/env bash
# make docs: format the examples and regenerate docs/ with tfplugindocs (a
# tool of the tools module, tools/go.mod), offline.
#
# tfplugindocs builds the provider, then asks the terraform found on PATH for
# its schema (it would download one if none were on PATH): tools/setup.sh
# links one as bin/terraform, which goes first on PATH here.
#
# With --check, also validates the docs (tfplugindocs validate) and fails if
# the generated docs differ from the committed ones.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

if [ ! -x bin/terraform ]; then
  bash tools/setup.sh >/dev/null
fi
export PATH="$repo/bin:$PATH"
export CHECKPOINT_DISABLE=1
# A CLI configuration of our own: the environment may name one that does not
# exist, or one with dev_overrides, which would get in the generator's way.
export TF_CLI_CONFIG_FILE="$repo/bin/docs.tfrc"
: >"$TF_CLI_CONFIG_FILE"

terraform fmt -recursive examples/
go -C tools build -o "$repo/bin/tfplugindocs" github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs
bin/tfplugindocs generate --provider-dir . --provider-name pouch

if [ "${1:-}" = --check ]; then
  # The generated pages are what the registry shows: check them too.
  bin/tfplugindocs validate --provider-dir . --provider-name pouch
  if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "docs: not a git work tree; skipping the staleness check" >&2
    exit 0
  fi
  if [ -n "$(git status --porcelain -- docs/ examples/)" ]; then
    echo "docs: docs/ or examples/ are out of date; run 'make docs' and commit the result:" >&2
    git status --short -- docs/ examples/ >&2
    git --no-pager diff -- docs/ examples/ >&2
    exit 1
  fi
  echo "docs: up to date"
fi
