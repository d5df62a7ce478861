#!/usr/bin/env bash
# One-time set-up for a fresh machine: system packages (nats-server, prometheus/promtool, sentencepiece), the npm
# packages from the lock file, and the native TensorFlow backend (scripts/native-backend.sh: compiled offline
# against TensorFlow's pip wheel; wasm is used where it cannot be built). Safe to run again; it skips what is there.
#
#   bash scripts/setup.sh [--no-native] [--python-peers]
#     --no-native      (or PROMPTMESH_NATIVE=off) skip the native backend; promptmesh runs on wasm
#     --python-peers   also install PyTorch (CPU), transformers, safetensors and peft with pip: the reference
#                      implementations the parity tests and `npm run bench -- peer` compare against
set -euo pipefail
cd "$(dirname "$0")/.."

native="${PROMPTMESH_NATIVE:-auto}"
peers=0
for arg in "$@"; do
  case "$arg" in
    --no-native) native=off ;;
    --python-peers) peers=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

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

# --ignore-scripts: the only install scripts in the tree are tfjs-node's (downloads libtensorflow from the internet,
# fails offline, and npm then deletes the package) and two cosmetic ones; the native backend is built below instead.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (npm ci)" >&2
  # Some registries (mirrors) do not carry every platform build of @biomejs/biome, so the lock file cannot list
  # them and `npm ci` refuses it as out of sync; `npm install` resolves the same versions from the lock anyway.
  if ! npm ci --ignore-scripts --no-fund --no-audit; then
    echo "setup: npm ci refused the lock file; falling back to npm install" >&2
    npm install --ignore-scripts --no-fund --no-audit
  fi
fi

PROMPTMESH_NATIVE="$native" bash scripts/native-backend.sh

if [ "$peers" = 1 ]; then
  bash scripts/python-peers.sh
fi
