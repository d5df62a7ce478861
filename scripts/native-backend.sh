#!/usr/bin/env bash
# Installs the native TensorFlow backend (@tensorflow/tfjs-node, or -node-gpu on a GPU machine) without internet:
# the binding's C++ sources ship in the npm package and are compiled with npm's own node-gyp against the
# libtensorflow inside TensorFlow's own wheel from the Python package index. Everything is cached, so a second run
# only checks that the binding loads. On any failure it prints one line saying why and exits 0: promptmesh then
# runs on wasm (PROMPTMESH_REQUIRE_NATIVE=1 makes a failure exit 1, as CI wants).
#
#   bash scripts/native-backend.sh [--variant auto|cpu|gpu|off] [--force]
#
# Environment: PROMPTMESH_NATIVE (same as --variant; default auto: gpu when nvidia-smi lists a GPU, else cpu),
# PROMPTMESH_TF_VERSION (default 2.21.0), PROMPTMESH_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/promptmesh),
# PIP (default: python3 -m pip). See docs/backends.md.
set -uo pipefail
cd "$(dirname "$0")/.."

variant="${PROMPTMESH_NATIVE:-auto}"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) variant="${2:-}"; shift 2 ;;
    --variant=*) variant="${1#*=}"; shift ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "native-backend: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "setup: native backend: $*" >&2; }
# One line saying why, then the fallback; exit 1 only when a native backend is required.
give_up() {
  # A GPU machine whose GPU variant cannot be installed (no CUDA wheels on the mirror, say) still gets the CPU one,
  # when the GPU variant was only auto-detected; a variant asked for by name is not swapped for another.
  if [ "${auto_gpu:-0}" = 1 ]; then
    say "GPU variant not installed: $*; trying the CPU variant"
    PROMPTMESH_NATIVE=cpu exec bash "$0" $([ "$force" = 1 ] && echo --force)
  fi
  say "not installed: $*; promptmesh will run on wasm"
  if [ "${PROMPTMESH_REQUIRE_NATIVE:-0}" = "1" ]; then exit 1; fi
  exit 0
}

case "$variant" in
  off|0|no|false) say "skipped (PROMPTMESH_NATIVE=off or --variant off); promptmesh runs on wasm"; exit 0 ;;
  auto)
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
      variant=gpu
      auto_gpu=1
    else
      variant=cpu
    fi ;;
  cpu|gpu) ;;
  *) echo "native-backend: --variant must be auto, cpu, gpu or off (got '$variant')" >&2; exit 2 ;;
esac

[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] ||
  give_up "this recipe covers linux-x64 only (this is $(uname -s)-$(uname -m))"

if [ "$variant" = gpu ]; then pkg_name=@tensorflow/tfjs-node-gpu; wheel=tensorflow; else pkg_name=@tensorflow/tfjs-node; wheel=tensorflow-cpu; fi
pkg="node_modules/$pkg_name"
tf_version="${PROMPTMESH_TF_VERSION:-2.21.0}"
cache_root="${PROMPTMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/promptmesh}/native"

# npm deletes an optional dependency whose install script fails (tfjs-node's downloads libtensorflow), so the
# package may be absent after a plain `npm install`; reinstall the lock file's packages without install scripts.
if [ ! -f "$pkg/package.json" ]; then
  say "$pkg_name is missing from node_modules; reinstalling the lock file's packages without install scripts"
  npm install --no-save --ignore-scripts --no-fund --no-audit >/dev/null 2>&1 ||
    give_up "npm could not install $pkg_name (run \`npm ci --ignore-scripts\` to see why)"
  [ -f "$pkg/package.json" ] || give_up "$pkg_name is not in package-lock.json"
fi
pkg_version=$(node -p "require('./$pkg/package.json').version")
key="${pkg_name#@tensorflow/}-$pkg_version-tf-$tf_version"
dir="$cache_root/$key"
# Where @mapbox/node-pre-gyp (which tfjs-node uses to find its binding) looks for it on this Node version.
binding=$(node -p "require('@mapbox/node-pre-gyp').find(require('path').resolve('$pkg/package.json'))" 2>/dev/null) ||
  give_up "cannot resolve the binding path of $pkg_name (is @mapbox/node-pre-gyp installed?)"

# Loads the binding in a fresh process; prints the TensorFlow version, or the loader's error and fails.
probe() {
  local err
  err=$(mktemp)
  if TF_CPP_MIN_LOG_LEVEL=3 node -e "process.stdout.write(String(require('$binding').TF_Version))" 2>"$err"; then
    rm -f "$err"
  else
    grep -m 1 -E 'Error|error' "$err" | cut -c 1-300
    rm -f "$err"
    return 1
  fi
}

stamp="$pkg/promptmesh-native.json"
if [ "$force" = 0 ] && [ -f "$stamp" ] && grep -q "\"$key\"" "$stamp"; then
  if v=$(probe) && [ "$v" = "$tf_version" ]; then
    say "ready ($pkg_name $pkg_version, TensorFlow $v, $variant)"
    exit 0
  fi
  say "installed binding does not load ($v); rebuilding"
fi

# 1. libtensorflow and its C headers, from TensorFlow's wheel (only the files we need are kept).
site="$dir/site"
if [ "$force" = 1 ] || [ ! -f "$site/tensorflow/libtensorflow_cc.so.2" ] || [ ! -f "$dir/include/tensorflow/c/c_api.h" ]; then
  command -v python3 >/dev/null 2>&1 || give_up "python3 is missing (it fetches TensorFlow's wheel through pip)"
  pip_cmd=(${PIP:-python3 -m pip})
  "${pip_cmd[@]}" --version >/dev/null 2>&1 || give_up "pip is missing (Debian: apt-get install python3-pip)"
  rm -rf "$dir" && mkdir -p "$dir/wheel" "$site" || give_up "cannot write the cache folder $dir"
  say "downloading $wheel==$tf_version through pip (once; the CPU wheel is about 270 MB)"
  if ! out=$("${pip_cmd[@]}" download --no-deps --only-binary=:all: --retries 0 --progress-bar off -q \
      -d "$dir/wheel" "$wheel==$tf_version" 2>&1); then
    give_up "pip could not download $wheel==$tf_version ($(echo "$out" | grep -i error | tail -n 1))"
  fi
  whl=$(ls "$dir"/wheel/*.whl 2>/dev/null | head -n 1)
  [ -n "$whl" ] || give_up "pip left no wheel in $dir/wheel"
  say "extracting libtensorflow and its C headers from $(basename "$whl")"
  python3 - "$whl" "$dir" <<'PY' || give_up "could not extract libtensorflow from the wheel"
import re, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
libs = ("tensorflow/libtensorflow_cc.so.2", "tensorflow/libtensorflow_framework.so.2")
# The binding includes tensorflow/c/{c_api,eager/c_api}.h, which pull in these folders' headers.
headers = ("tensorflow/include/tensorflow/c/", "tensorflow/include/tensorflow/core/platform/",
           "tensorflow/include/tsl/", "tensorflow/include/xla/tsl/")
with zipfile.ZipFile(whl) as z:
    names = z.namelist()
    for lib in libs:
        if lib not in names:
            sys.exit(f"{lib} is not in {whl}")
        z.extract(lib, f"{out}/site")
    for n in names:
        if n.startswith(headers) and not n.endswith("/"):
            z.extract(n, out)
            # tensorflow/include/X -> include/X
    meta = [n for n in names if re.match(r"tensorflow[^/]*\.dist-info/METADATA$", n)]
    if meta:
        z.extract(meta[0], out)
PY
  mv "$dir/tensorflow/include" "$dir/include" && rm -rf "$dir/tensorflow" || give_up "unexpected wheel layout"
  if [ "$variant" = gpu ]; then
    # The wheel's `and-cuda` extra names the CUDA 12 libraries as pip packages (nvidia-*); install exactly those
    # beside tensorflow/ as in a site-packages folder, so TensorFlow's $ORIGIN-relative search finds them.
    mapfile -t cuda < <(sed -n 's/^Requires-Dist: \(nvidia-[^;]*\); extra == "and-cuda".*/\1/p' "$dir"/tensorflow*.dist-info/METADATA | tr -d ' ')
    [ ${#cuda[@]} -gt 0 ] || give_up "$wheel==$tf_version names no CUDA libraries in its and-cuda extra"
    say "installing ${#cuda[@]} CUDA library packages through pip (several GB, once)"
    "${pip_cmd[@]}" install --no-deps --only-binary=:all: --retries 0 --progress-bar off -q --target "$site" "${cuda[@]}" >/dev/null 2>&1 ||
      give_up "pip could not install the CUDA libraries (${cuda[*]})"
    # Also link them next to libtensorflow: TensorFlow dlopens them by name and its RUNPATH includes $ORIGIN.
    for so in "$site"/nvidia/*/lib/*.so*; do ln -sf "$so" "$site/tensorflow/$(basename "$so")"; done
  fi
  rm -rf "$dir/wheel"
fi

# 2. The binding, compiled once per (package version, TensorFlow version) with npm's own node-gyp.
if [ "$force" = 1 ] || [ ! -f "$dir/tfjs_binding.node" ]; then
  command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 ||
    give_up "a C++ compiler and make are needed (Debian: apt-get install g++ make)"
  gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
  [ -f "$gyp" ] || gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
  [ -f "$gyp" ] || give_up "npm's node-gyp was not found (looked beside $(command -v npm))"
  # node-gyp would download Node's headers; use the installed ones (Debian's nodejs ships them in /usr/include/node).
  nodedir=""
  for d in "$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")" /usr /usr/local; do
    if [ -f "$d/include/node/node_api.h" ]; then nodedir="$d"; break; fi
  done
  [ -n "$nodedir" ] || give_up "Node's C headers (include/node/node_api.h) are missing (Debian: apt-get install libnode-dev)"
  src="$dir/build-src"
  rm -rf "$src" && mkdir -p "$src/deps/lib" && cp -r "$pkg/binding.gyp" "$pkg/binding" "$src/" &&
    ln -s "$dir/include" "$src/deps/include" &&
    ln -s "$site/tensorflow/libtensorflow_cc.so.2" "$src/deps/lib/libtensorflow.so" &&
    ln -s "$site/tensorflow/libtensorflow_framework.so.2" "$src/deps/lib/libtensorflow_framework.so" ||
    give_up "cannot prepare the build folder $src"
  say "compiling the $pkg_name binding with node-gyp (about 15 s)"
  napi=$(basename "$(dirname "$binding")" | sed 's/^napi-v//')
  if ! out=$(cd "$src" && node "$gyp" rebuild --nodedir="$nodedir" --module_name=tfjs_binding \
      --module_path="$src/out" --napi_build_version="$napi" 2>&1); then
    give_up "node-gyp failed: $(echo "$out" | grep -E 'error|Error' | head -n 1)"
  fi
  cp "$src/out/tfjs_binding.node" "$dir/tfjs_binding.node" && rm -rf "$src" || give_up "node-gyp produced no binding"
fi

# 3. Place it where tfjs-node looks: lib/napi-vN/tfjs_binding.node, with its RUNPATH $ORIGIN/../../deps/lib.
mkdir -p "$(dirname "$binding")" && cp "$dir/tfjs_binding.node" "$binding" &&
  rm -rf "$pkg/deps" && mkdir -p "$pkg/deps" && ln -s "$site/tensorflow" "$pkg/deps/lib" ||
  give_up "cannot write into $pkg"
if ! v=$(probe) || [ "$v" != "$tf_version" ]; then
  rm -f "$stamp"
  give_up "the built binding does not load: $v"
fi
printf '{"key":"%s","package":"%s","variant":"%s","tensorflow":"%s","cache":"%s"}\n' \
  "$key" "$pkg_name" "$variant" "$v" "$dir" >"$stamp"
say "ready ($pkg_name $pkg_version, TensorFlow $v, $variant; cached in $dir)"
