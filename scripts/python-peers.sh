#!/usr/bin/env bash
# Installs the Python references the parity tests compare with: PyTorch (CPU), transformers, safetensors and peft,
# with pip from the configured package index. Skips what is importable already. On a failure it prints one line
# saying why and exits 0 (the tests that need them then skip, each saying so); PROMPTMESH_REQUIRE_PEERS=1 makes a
# failure exit 1, as CI wants: there a skipped parity test would be a test that cannot fail.
#
#   bash scripts/python-peers.sh
#
# Environment: PYTHON (default python3), PIP (default: $PYTHON -m pip).
set -uo pipefail

python="${PYTHON:-python3}"
pip="${PIP:-$python -m pip}"
modules='torch, transformers, safetensors, peft'

give_up() {
  echo "setup: $*" >&2
  if [ "${PROMPTMESH_REQUIRE_PEERS:-0}" = "1" ]; then exit 1; fi
  exit 0
}

importable() { $python -c "import $modules" >/dev/null 2>&1; }

importable && exit 0
if ! $pip --version >/dev/null 2>&1; then
  give_up "no pip; the tests that compare with PyTorch/transformers will skip (Debian: apt-get install python3-pip)"
fi
echo "setup: installing the Python peers (torch, transformers, safetensors, peft) with pip" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! $pip install --retries 0 --progress-bar off -q torch transformers safetensors peft >"$log" 2>&1; then
  give_up "pip could not install torch/transformers/safetensors/peft ($(grep -m1 -i 'error' "$log" || tail -n1 "$log")); the tests that compare with them will skip"
fi
importable || give_up "pip installed the Python peers but '$python -c \"import $modules\"' still fails; the tests that compare with them will skip"
