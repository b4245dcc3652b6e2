#!/usr/bin/env bash
# make demo: upgrade a running container in place with Terraform.
#
#   1. sets the host up (tools/setup.sh) and ensures containerd runs
#      (tools/containerd.sh);
#   2. builds the provider into bin/ and points Terraform at it with a
#      dev_overrides CLI configuration (no registry, no `terraform init`);
#   3. builds two images, docker.io/pouch/demo:v1 and :v2, with tools/mkimage
#      (busybox httpd serving /var/www/index.html = "v1" / "v2") and imports
#      them into containerd's "pouch" namespace;
#   4. applies examples/demo with image v1, then with image v2, and checks
#      that the container ID did not change and that the new version serves.
#
# Terraform's working directory, with its state, is $POUCH_DEMO_DIR
# (/var/lib/pouch-demo), not the checkout: the container belongs to the host,
# and a later checkout (or a second clone, after the first was deleted) goes
# on managing it. A container of the demo's name that no state knows (left by
# an older version, whose state was in the checkout) is imported first.
#
# The container is left running; `tools/demo.sh destroy` (make demo-destroy)
# removes it.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
sock=${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}
ns=${CONTAINERD_NAMESPACE:-pouch}
url=http://127.0.0.1:8089/
workdir=${POUCH_DEMO_DIR:-/var/lib/pouch-demo}

say() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: running containers on containerd needs root; run: sudo make demo" >&2
  exit 1
fi

say "Setting up the host"
tfline=$(bash tools/setup.sh | tail -n 1)
tf=${tfline#TF_ACC_TERRAFORM_PATH=}
bash tools/containerd.sh

say "Building the provider"
mkdir -p bin
go build -o bin/terraform-provider-pouch .
echo "built $repo/bin/terraform-provider-pouch"

cliconfig=$repo/bin/demo.tfrc
cat >"$cliconfig" <<HCL
provider_installation {
  dev_overrides {
    "pouch/pouch" = "$repo/bin"
  }
  direct {}
}
HCL
export TF_CLI_CONFIG_FILE=$cliconfig
export CHECKPOINT_DISABLE=1 TF_INPUT=0

# The configuration is this checkout's; the state is the host's.
mkdir -p "$workdir"
chmod 0700 "$workdir"
cp examples/demo/main.tf "$workdir/main.tf"
echo "terraform working directory (state): $workdir"

if [ "${1:-}" = destroy ]; then
  say "Destroying the demo container"
  image=$("$tf" -chdir="$workdir" output -raw image 2>/dev/null || echo docker.io/pouch/demo:v1)
  "$tf" -chdir="$workdir" destroy -auto-approve -var "image=$image"
  exit 0
fi

say "Building and importing images docker.io/pouch/demo:v1 and :v2"
imgdir=$(mktemp -d)
trap 'rm -rf "$imgdir"' EXIT
declare -A digest
for v in v1 v2; do
  digest[$v]=$(go -C tools run ./mkimage \
    -name "docker.io/pouch/demo:$v" \
    -out "$imgdir/demo-$v.tar" \
    -env "PATH=/usr/sbin:/usr/bin:/sbin:/bin" \
    -env "POUCH_DEMO_VERSION=$v" \
    -file "/version=$v" \
    -file "/var/www/index.html=$v" \
    -cmd "httpd -f -p 127.0.0.1:8089 -h /var/www" | tail -n 1)
  ctr -a "$sock" -n "$ns" images import "$imgdir/demo-$v.tar" >/dev/null
  echo "docker.io/pouch/demo:$v  ${digest[$v]}"
done
ctr -a "$sock" -n "$ns" images ls -q | grep '^docker.io/pouch/demo:' || {
  echo "demo: the images were not imported under docker.io/pouch/demo" >&2
  exit 1
}

http_get() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "$url"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -T 2 -O - "$url"
  else
    timeout 3 busybox wget -q -O - "$url"
  fi
}

served() {
  # Prints what the demo container serves, waiting up to 15 s for $1.
  local want=$1 got="" deadline=$((SECONDS + 15))
  while [ "$SECONDS" -lt "$deadline" ]; do
    got=$(http_get 2>/dev/null || true)
    [ "$got" = "$want" ] && break
    sleep 0.5
  done
  echo "$got"
}

apply() {
  local v=$1
  say "terraform apply -var image=docker.io/pouch/demo:$v"
  "$tf" -chdir="$workdir" apply -auto-approve -var "image=docker.io/pouch/demo:$v"
  say "terraform output"
  "$tf" -chdir="$workdir" output
  local got
  got=$(served "$v")
  echo "GET $url -> ${got:-<nothing>}"
  if [ "$got" != "$v" ]; then
    echo "demo: expected the container to serve \"$v\"" >&2
    exit 1
  fi
}

# created_at ID prints when containerd created the container: a container that
# was replaced rather than updated has a new creation time, even under the
# same name.
created_at() {
  ctr -a "$sock" -n "$ns" containers info "$1" | sed -n 's/^ *"CreatedAt": "\(.*\)",\{0,1\}$/\1/p'
}

# A demo container that no state knows: adopt it rather than fail with
# "already exists".
if ! "$tf" -chdir="$workdir" state list 2>/dev/null | grep -q '^pouch_container.web$' &&
  ctr -a "$sock" -n "$ns" containers info pouch-demo-web >/dev/null 2>&1; then
  say "Importing the existing container pouch-demo-web into the demo's state"
  "$tf" -chdir="$workdir" import -var "image=docker.io/pouch/demo:v1" pouch_container.web pouch-demo-web
fi

apply v1
id1=$("$tf" -chdir="$workdir" output -raw id)
created1=$(created_at "$id1")
apply v2
id2=$("$tf" -chdir="$workdir" output -raw id)
created2=$(created_at "$id2")
image2=$("$tf" -chdir="$workdir" output -raw image)
imageid2=$("$tf" -chdir="$workdir" output -raw image_id)

echo
echo "container $id2 creation time: $created1 before the upgrade, $created2 after"
if [ "$id1" != "$id2" ] || [ -z "$created1" ] || [ "$created1" != "$created2" ]; then
  echo "FAIL: the container was replaced, not upgraded in place" >&2
  exit 1
fi
if [ "$image2" != "docker.io/pouch/demo:v2" ] || [ "$imageid2" != "${digest[v2]}" ]; then
  echo "FAIL: after the upgrade the container runs $image2 ($imageid2), want docker.io/pouch/demo:v2 (${digest[v2]})" >&2
  exit 1
fi
echo "same container ID $id2, image v1 -> v2 upgraded in place"
