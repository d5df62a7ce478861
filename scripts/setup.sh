#!/usr/bin/env bash
# One-time set-up for a fresh machine: system packages (nats-server, prometheus/promtool, sentencepiece)
# and the npm packages from the lock file. Safe to run again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v spm_train >/dev/null 2>&1 || need+=(sentencepiece)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing ${need[*]}; install them with your package manager (Debian/Ubuntu: sudo apt-get install ${need[*]})" >&2
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (npm ci)" >&2
  # Some registries (mirrors) do not carry every platform build of @biomejs/biome, so the lock file cannot list
  # them and `npm ci` refuses it as out of sync; `npm install` resolves the same versions from the lock anyway.
  if ! npm ci --no-fund --no-audit; then
    echo "setup: npm ci refused the lock file; falling back to npm install" >&2
    npm install --no-fund --no-audit
  fi
fi
