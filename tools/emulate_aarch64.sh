#!/usr/bin/env bash
# Run edgernn bundles on an emulated 64-bit ARM userland (Debian bookworm, Python 3.11, like 64-bit
# Raspberry Pi OS) on an x86 host, with the runtime-only edgernn (numpy + onnxruntime, no torch),
# and compare every variant's outputs with the host's within its precision's tolerance.
#
#   tools/emulate_aarch64.sh                      # train + export an LSTM and a GRU bundle, check them
#   tools/emulate_aarch64.sh BUNDLE [BUNDLE...]   # check these bundles (exported on this host)
#
# Options (environment):  EMU_WORK=/tmp/edgernn-aarch64   where the prefix, wheels and results live
#                         QEMU_CPU=cortex-a72             Pi 4 (cortex-a76 for a Pi 5)
#                         EMU_FRESH=1                     rebuild the prefix even if it is there
#                         PYTHON=python                   host python with edgernn[export] (the workstation venv)
#                         EMU_TFLITE=1                    also install ai-edge-litert (numpy 2) and, in a second
#                                                         site, tflite-runtime 2.14 (numpy < 2), for .tflite variants
#
# How (no root-level changes to the host besides installing qemu-user-static):
#   - qemu-user-static from Debian, called explicitly (binfmt_misc may not be mounted);
#   - arm64 .debs of python3.11 and the C/C++ runtime fetched with a private apt configuration
#     (APT::Architecture=arm64, its own lists and cache) and unpacked with dpkg -x into a prefix;
#   - aarch64 wheels resolved by the host's pip from edgernn's own runtime dependencies, with every
#     manylinux_2_17 … 2_36 aarch64 tag listed (with manylinux2014 alone pip silently picks old
#     releases);
#   - onnxruntime reads /proc/cpuinfo, which under qemu-user is the host's x86 one, and crashes on
#     import: a Cortex-A72 cpuinfo under the prefix (qemu's -L redirects the guest's open) fixes it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${EMU_WORK:-/tmp/edgernn-aarch64}"
PREFIX="$WORK/prefix"
SITE="$WORK/site"               # runtime-only edgernn + numpy + onnxruntime (+ ai-edge-litert)
SITE_TFLITE="$WORK/site-tflite" # tflite-runtime 2.14 needs numpy < 2: its own site
HOSTPY="${PYTHON:-python}"
export QEMU_CPU="${QEMU_CPU:-cortex-a72}"
apt_uri() {  # this machine's own Debian source for a suite, read from its apt configuration
  { awk -v suite="$1" '/^URIs:/ {u = $2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == suite) print u}' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    awk -v suite="$1" '$1 == "deb" && $3 == suite {print $2}' /etc/apt/sources.list 2>/dev/null || true; } | head -n 1
}
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(apt_uri bookworm)}"
DEBIAN_SECURITY="${DEBIAN_SECURITY:-$(apt_uri bookworm-security)}"
if [ -z "$DEBIAN_MIRROR" ]; then
  echo "emulate_aarch64: no Debian bookworm source in this machine's apt configuration; set DEBIAN_MIRROR" >&2
  exit 2
fi
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DEBS=(libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libuuid1
      libtinfo6 libncursesw6 libreadline8 libcrypt1 media-types
      python3.11-minimal libpython3.11-minimal libpython3.11-stdlib)

log() { printf '[emulate-aarch64] %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

guest_python() {  # guest_python SITE ARGS...: the aarch64 python3.11 under qemu, with SITE on its path
  local site="$1"; shift
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u PYTHONHOME -u VIRTUAL_ENV \
    PYTHONPATH="$site" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 QEMU_CPU="$QEMU_CPU" \
    "$QEMU" -L "$PREFIX" "$PREFIX/usr/bin/python3.11" "$@"
}

fake_cpuinfo() {  # a Cortex-A72 (Raspberry Pi 4) /proc/cpuinfo, one entry per host CPU
  local n i; n="$(nproc)"
  for ((i = 0; i < n; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
  done
  printf 'Hardware\t: BCM2835\nModel\t\t: edgernn emulated aarch64 (qemu-user, %s)\n' "$QEMU_CPU"
}

pip_aarch64() {  # pip_aarch64 TARGET ARGS...: aarch64 cp311 wheels only
  local target="$1"; shift
  local tags=() v
  for v in $(seq 17 36); do tags+=(--platform "manylinux_2_${v}_aarch64"); done
  tags+=(--platform manylinux2014_aarch64)
  "$HOSTPY" -m pip install -q --disable-pip-version-check --no-warn-conflicts --target "$target" --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 "${tags[@]}" "$@" 2> >(grep -v "^WARNING: Location" >&2)
}

setup() {
  local t0; t0="$(now)"
  QEMU="$(command -v qemu-aarch64-static || true)"
  if [[ -z "$QEMU" ]]; then
    log "installing qemu-user-static"
    apt-get install -y -qq qemu-user-static >/dev/null || { apt-get update -qq && apt-get install -y -qq qemu-user-static >/dev/null; }
    QEMU="$(command -v qemu-aarch64-static)"
  fi
  rm -rf "$PREFIX" "$SITE" "$SITE_TFLITE" "$WORK/apt" "$WORK/wheels"
  mkdir -p "$PREFIX/proc" "$WORK/apt"/{lists/partial,cache/archives/partial,parts,prefs,debs} "$WORK/wheels"

  log "arm64 .debs from Debian bookworm (private apt configuration)"
  : > "$WORK/apt/status"
  cat > "$WORK/apt/sources.list" <<EOF
deb [arch=arm64 signed-by=$KEYRING] $DEBIAN_MIRROR bookworm main
deb [arch=arm64 signed-by=$KEYRING] $DEBIAN_MIRROR bookworm-updates main
deb [arch=arm64 signed-by=$KEYRING] $DEBIAN_SECURITY bookworm-security main
EOF
  local apt_opts=(-qq -o Dir::Etc::SourceList="$WORK/apt/sources.list" -o Dir::Etc::SourceParts="$WORK/apt/parts"
    -o Dir::Etc::PreferencesParts="$WORK/apt/prefs" -o Dir::State::Lists="$WORK/apt/lists"
    -o Dir::State::status="$WORK/apt/status" -o Dir::Cache="$WORK/apt/cache"
    -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1 -o Acquire::Languages=none -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update
  (cd "$WORK/apt/debs" && apt-get "${apt_opts[@]}" download "${DEBS[@]/%/:arm64}")
  local deb
  for deb in "$WORK"/apt/debs/*.deb; do dpkg -x "$deb" "$PREFIX"; done
  fake_cpuinfo > "$PREFIX/proc/cpuinfo"
  guest_python "" -c "import ssl, ctypes, sqlite3, lzma, bz2, zlib, decimal, json, platform; print('guest python', platform.python_version(), platform.machine())" >&2

  log "aarch64 wheels: edgernn (runtime only) and what it depends on"
  "$HOSTPY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$WORK/wheels" "$REPO" > "$WORK/wheel.log" 2>&1 \
    || { cat "$WORK/wheel.log" >&2; exit 1; }
  local litert=()
  if [[ "${EMU_TFLITE:-0}" == 1 ]]; then litert=(ai-edge-litert); fi
  pip_aarch64 "$SITE" "$WORK"/wheels/edgernn-*.whl "${litert[@]}"  # one resolve per site: pip --target does not merge
  guest_python "$SITE" -c "import onnxruntime, numpy; print('guest onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__)" >&2
  if [[ "${EMU_TFLITE:-0}" == 1 ]]; then
    # tflite-runtime 2.14 (its last release) needs numpy < 2: a TFLite-only site (edgernn without onnxruntime)
    pip_aarch64 "$SITE_TFLITE/.deps" tflite-runtime "numpy<2" "click>=8.1"
    pip_aarch64 "$SITE_TFLITE/.pkg" --no-deps "$WORK"/wheels/edgernn-*.whl
    cp -a "$SITE_TFLITE/.deps/." "$SITE_TFLITE/.pkg/." "$SITE_TFLITE/" && rm -rf "$SITE_TFLITE/.deps" "$SITE_TFLITE/.pkg"
    guest_python "$SITE" -c "import ai_edge_litert.interpreter as i, importlib.metadata as m; print('guest ai-edge-litert', m.version('ai-edge-litert'))" >&2
    guest_python "$SITE_TFLITE" -c "import tflite_runtime.interpreter as i, numpy; print('guest tflite-runtime', i.__name__, 'numpy', numpy.__version__)" >&2
  fi
  echo "$(elapsed "$t0")" > "$WORK/setup_seconds"
  touch "$WORK/.ready"
  log "set-up took $(cat "$WORK/setup_seconds") s"
}

refresh_edgernn() {  # a reused prefix gets this checkout's edgernn (pure Python: the same wheel on any platform)
  rm -f "$WORK"/wheels/edgernn-*.whl
  "$HOSTPY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$WORK/wheels" "$REPO" > "$WORK/wheel.log" 2>&1 \
    || { cat "$WORK/wheel.log" >&2; exit 1; }
  local site
  for site in "$SITE" "$SITE_TFLITE"; do
    [[ -d "$site/edgernn" ]] || continue
    rm -rf "$site"/edgernn "$site"/edgernn-*.dist-info
    pip_aarch64 "$site" --no-deps "$WORK"/wheels/edgernn-*.whl
  done
}

default_bundles() {  # train and export a small LSTM and GRU on the host, every precision export offers
  local quantize=() name
  local help; help=$("$HOSTPY" -m edgernn export --help)
  if grep -q -- "--quantize" <<< "$help"; then quantize=(--quantize fp16,int8-dynamic,int8-static); fi
  if grep -q -- "int8-weights" <<< "$help"; then quantize=(--quantize fp16,int8-weights,int8-dynamic,int8-static); fi
  if grep -q -- "--best-effort" <<< "$help"; then quantize+=(--best-effort); fi  # what a format cannot make is listed
  if [[ "${EMU_TFLITE:-0}" == 1 ]]; then quantize+=(--format onnx,tflite); fi
  "$HOSTPY" -m edgernn train --task sum --cell lstm --layers 2 --hidden 12 --epochs 3 --samples 400 --quiet --out "$WORK/run-lstm" >/dev/null
  "$HOSTPY" -m edgernn train --task bands --cell gru --hidden 10 --epochs 3 --samples 400 --quiet --out "$WORK/run-gru" >/dev/null
  for name in lstm gru; do
    "$HOSTPY" -m edgernn export "$WORK/run-$name" --out "$WORK/bundles/$name" "${quantize[@]}" >/dev/null
    echo "$WORK/bundles/$name"
  done
}

main() {
  mkdir -p "$WORK"
  QEMU="$(command -v qemu-aarch64-static || true)"
  if [[ "${EMU_FRESH:-0}" == 1 || ! -f "$WORK/.ready" || -z "$QEMU" ]]; then setup; else
    log "reusing the prefix in $WORK (set-up took $(cat "$WORK/setup_seconds") s; EMU_FRESH=1 rebuilds it)"
    refresh_edgernn; fi

  local bundles=("$@")
  if [[ ${#bundles[@]} -eq 0 ]]; then mapfile -t bundles < <(default_bundles); fi
  local results="$WORK/results"; rm -rf "$results"; mkdir -p "$results"
  local helper="$REPO/tools/device_check.py" t0 status=0 b

  "$HOSTPY" "$helper" inputs "${bundles[@]}" --out "$results/inputs.npz"
  "$HOSTPY" "$helper" run "${bundles[@]}" --inputs "$results/inputs.npz" --out "$results/host.npz"

  for b in "${bundles[@]}"; do
    t0="$(now)"
    log "edgernn verify $b (aarch64, $QEMU_CPU)"
    guest_python "$SITE" -m edgernn verify "$b" --json > "$results/verify-$(basename "$b").json" || status=1
    guest_python "$SITE" - "$results/verify-$(basename "$b").json" <<'EOF' || status=1
import json, sys
r = json.load(open(sys.argv[1]))
rt = r["runtime"]
print(f"verify {r['bundle']} on {rt['machine']} (onnxruntime {rt.get('onnxruntime')}, numpy {rt['numpy']}, python {rt['python']}): "
      + ("passed" if r["passed"] else "FAILED"))
for v in r["variants"]:
    print(f"  {v['status']:<7} {v['variant']:<26} max abs vs stored reference {v['max_abs'] if v['max_abs'] is not None else '-'}  {v['reason']}")
sys.exit(0 if r["passed"] else 1)
EOF
    log "verify took $(elapsed "$t0") s"
  done

  t0="$(now)"
  guest_python "$SITE" "$helper" run "${bundles[@]}" --inputs "$results/inputs.npz" --out "$results/aarch64.npz"
  log "device run took $(elapsed "$t0") s"
  if [[ "${EMU_TFLITE:-0}" == 1 ]] && grep -q '"format": "tflite"' "${bundles[@]/%//manifest.json}"; then
    # the .tflite variants again, under tflite-runtime 2.14 + numpy < 2 (no onnxruntime in that site)
    local tfl=() ; for b in "${bundles[@]}"; do grep -q '"format": "tflite"' "$b/manifest.json" && tfl+=("$b"); done
    for b in "${tfl[@]}"; do
      log "edgernn verify $b under tflite-runtime (onnx variants are skipped there)"
      guest_python "$SITE_TFLITE" -m edgernn verify "$b" || status=1
    done
    guest_python "$SITE_TFLITE" "$helper" run "${tfl[@]}" --format tflite --inputs "$results/inputs.npz" --out "$results/aarch64-tflite-runtime.npz"
    echo "max abs difference host vs emulated aarch64 with tflite-runtime, per .tflite variant:"
    "$HOSTPY" "$helper" compare "${tfl[@]}" --format tflite --host "$results/host.npz" --device "$results/aarch64-tflite-runtime.npz" || status=1
  elif [[ "${EMU_TFLITE:-0}" == 1 ]]; then
    log "EMU_TFLITE=1 but no bundle has .tflite variants: the TFLite runtimes were installed and imported, nothing to run"
  fi
  echo "max abs difference host ($(uname -m)) vs emulated aarch64 ($QEMU_CPU), per variant:"
  "$HOSTPY" "$helper" compare "${bundles[@]}" --host "$results/host.npz" --device "$results/aarch64.npz" || status=1
  "$HOSTPY" "$helper" compare "${bundles[@]}" --host "$results/host.npz" --device "$results/aarch64.npz" --json \
    > "$results/compare.json" || true
  echo "emulated aarch64 check: $([[ $status == 0 ]] && echo passed || echo FAILED)  (results in $results)"
  return $status
}

main "$@"
