#!/usr/bin/env bash
# Ensure a containerd is serving at $CONTAINERD_ADDRESS
# (default /run/containerd/containerd.sock).
#
# If one already answers, it is used as it is. Otherwise containerd is started
# in the background (nohup, log in /var/log/pouch-containerd.log) with a
# minimal configuration that disables the CRI plugin (pouch does not need it,
# and it only adds start-up errors on hosts without CNI configuration), and
# the script waits up to 30 s for it to answer.
#
# The containerd it starts keeps running after the script exits; its PID is in
# /run/pouch/containerd.pid (stop it with: kill "$(cat /run/pouch/containerd.pid)").
set -euo pipefail

sock=${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}
logfile=${POUCH_CONTAINERD_LOG:-/var/log/pouch-containerd.log}
statedir=/run/pouch
config=$statedir/containerd.toml

log() { echo "containerd: $*" >&2; }

answers() { ctr -a "$sock" version >/dev/null 2>&1; }

if answers; then
  log "already serving at $sock"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  log "no containerd at $sock, and starting one needs root"
  exit 1
fi
for bin in containerd ctr runc; do
  command -v "$bin" >/dev/null 2>&1 || { log "$bin not found: run tools/setup.sh first"; exit 1; }
done

mkdir -p "$statedir" "$(dirname "$sock")" "$(dirname "$logfile")"
cat >"$config" <<TOML
version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$sock"
TOML

log "starting containerd (config $config, log $logfile)"
nohup containerd --config "$config" >>"$logfile" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$statedir/containerd.pid"
disown "$pid" 2>/dev/null || true

deadline=$((SECONDS + 30))
until answers; do
  if ! kill -0 "$pid" 2>/dev/null; then
    log "containerd exited; last lines of $logfile:"
    tail -n 30 "$logfile" >&2 || true
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "containerd did not answer at $sock within 30 s; last lines of $logfile:"
    tail -n 30 "$logfile" >&2 || true
    exit 1
  fi
  sleep 0.2
done
log "serving at $sock (pid $pid)"
