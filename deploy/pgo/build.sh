#!/usr/bin/env bash
# Profile-guided, BOLT-optimised release build of the thanos binaries (thanos, thanos-receive,
# thanos-store, thanos-query). The PromQL benchmark measures it with PGO=1; the release images
# ship its --static variant (deploy/build-images.sh --pgo), which is profile-guided only.
#
#   deploy/pgo/build.sh [--static] [--thanos-only] [--no-bolt]
#
#   --static       link statically (-C target-feature=+crt-static), as the images need
#   --thanos-only  build only the `thanos` binary in step 4, not the three thin ones
#   --no-bolt      skip step 5 (the binaries are then the plain -Cprofile-use build); implied
#                  by --static, since llvm-bolt cannot instrument a static glibc binary
#
# Steps (about 35 minutes on 2 cores, 25 with --thanos-only; two release builds with fat LTO):
#   1. an instrumented release build (-Cprofile-generate) of the thanos binary and of the
#      helpers rw-load and s3-test-server, into $TARGET/pgo-instrumented;
#   2. deploy/pgo/train.py runs the instrumented thanos as store (FILESYSTEM and S3 buckets),
#      receive (fed by rw-load) and query, and sends the queries of deploy/pgo/queries.txt;
#   3. llvm-profdata merges the profiles into $TARGET/pgo-data/thanos.profdata;
#   4. the release build with that profile (-Cprofile-use), into $TARGET/pgo-build, linked
#      with --emit-relocs for step 5;
#   5. BOLT, the post-link optimiser: llvm-bolt instruments the binaries of step 4, train.py
#      runs them again (once as `thanos <component>`, once as the thin binaries), merge-fdata
#      merges each binary's profiles and llvm-bolt rewrites the binary with its hot code laid
#      out together (function order, block order, cold code split off), and runs the
#      training workload once more on the rewritten binaries (the thin ones when built).
# The binaries end up in $TARGET/pgo/<host triple>/release/. $TARGET is CARGO_TARGET_DIR or
# target/. Extra RUSTFLAGS are passed to both builds.
# Needs: cargo, python3, promtool (Debian: prometheus), llvm-profdata of the toolchain's LLVM
# version, from the rustup component llvm-tools (installed here when missing), and for step 5
# llvm-bolt and merge-fdata (Debian: bolt-22; LLVM_BOLT_DIR names their directory if they are
# not on PATH or in /usr/lib/llvm-*/bin).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
flags="${RUSTFLAGS:-}"
bins=(--bins)
names=(thanos thanos-receive thanos-store thanos-query)
bolt=true
static=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --static) flags="$flags -C target-feature=+crt-static"; static=true ;;
    --thanos-only) bins=(--bin thanos); names=(thanos) ;;
    --no-bolt) bolt=false ;;
    -h|--help) sed -n '/^set -euo/q; 2,$p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in cargo rustc python3 promtool; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool not found on PATH" >&2; exit 2; }
done

host="$(rustc -vV | sed -n 's/^host: //p')"
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [[ ! -x "$profdata" ]]; then
  echo "build.sh: installing the rustup component llvm-tools (for llvm-profdata)"
  rustup component add llvm-tools
fi
[[ -x "$profdata" ]] || { echo "build.sh: $profdata not found" >&2; exit 2; }

# llvm-bolt and merge-fdata: in LLVM_BOLT_DIR, else on PATH, else in the newest
# /usr/lib/llvm-NN/bin (where Debian's bolt-NN puts both)
find_bolt_tool() {
  local name="$1" found
  if [[ -n "${LLVM_BOLT_DIR:-}" ]]; then
    found="$LLVM_BOLT_DIR/$name"
  else
    found="$(command -v "$name" || ls -d /usr/lib/llvm-*/bin/"$name" 2>/dev/null | sort -V | tail -n1 || true)"
  fi
  [[ -n "$found" && -x "$found" ]] || {
    echo "build.sh: $name not found: install LLVM's BOLT (Debian: apt-get install bolt-22)," \
      "set LLVM_BOLT_DIR, or build without BOLT (--no-bolt)" >&2
    exit 2
  }
  echo "$found"
}
if $bolt && $static; then
  # LLVM 22's BOLT cannot instrument a statically linked glibc binary (no finalisation
  # hook, and llvm-bolt crashes on it); the static build stays profile-guided only
  echo "build.sh: --static: no BOLT step (llvm-bolt cannot instrument static binaries)"
  bolt=false
fi
if $bolt; then
  llvm_bolt="$(find_bolt_tool llvm-bolt)"
  merge_fdata="$(find_bolt_tool merge-fdata)"
fi

data="$target/pgo-data"
rm -rf "$data"
mkdir -p "$data/profiles"
cd "$repo"

# train THANOS WORK [train.py options]: the training workload, its scratch directory removed
# after it (the helpers come from the instrumented build of step 1)
train() {
  local thanos="$1" work="$2"
  shift 2
  python3 deploy/pgo/train.py --thanos "$thanos" --rw-load "$bin/rw-load" \
    --s3-server "$bin/s3-test-server" --work "$work" "$@"
  rm -rf "$work"
}

# --target keeps RUSTFLAGS off build scripts and proc macros: only the binaries' code is
# instrumented and optimised with the profile.
echo "==> build.sh: instrumented build"
RUSTFLAGS="$flags -Cprofile-generate=$data/profiles" CARGO_TARGET_DIR="$target/pgo-instrumented" \
  cargo build --release --locked --target "$host" -p thanos-cmd -p thanos-test-support \
    --bin thanos --bin rw-load --bin s3-test-server
bin="$target/pgo-instrumented/$host/release"

echo "==> build.sh: training"
train "$bin/thanos" "$data/work" --profile-dir "$data/profiles"
shopt -s nullglob
raw=("$data"/profiles/thanos-*.profraw)
((${#raw[@]})) || { echo "build.sh: training wrote no profiles" >&2; exit 1; }
"$profdata" merge -o "$data/thanos.profdata" "${raw[@]}"
echo "==> build.sh: merged ${#raw[@]} profiles into $data/thanos.profdata"

echo "==> build.sh: optimised build"
use_flags="$flags -Cprofile-use=$data/thanos.profdata"
# llvm-bolt rewrites the code of a binary linked with its relocations
$bolt && use_flags="$use_flags -C link-arg=-Wl,--emit-relocs"
RUSTFLAGS="$use_flags" CARGO_TARGET_DIR="$target/pgo-build" \
  cargo build --release --locked --target "$host" -p thanos-cmd "${bins[@]}"
built="$target/pgo-build/$host/release"
out="$target/pgo/$host/release"
rm -rf "$out"
mkdir -p "$out"

if ! $bolt; then
  for name in "${names[@]}"; do cp "$built/$name" "$out/$name"; done
  echo "==> build.sh: binaries in $out"
  exit 0
fi

echo "==> build.sh: BOLT: instrumented binaries"
bolt_dir="$data/bolt"
mkdir -p "$bolt_dir/bin" "$bolt_dir/profiles"
for name in "${names[@]}"; do
  "$llvm_bolt" "$built/$name" -instrument -o "$bolt_dir/bin/$name" \
    --instrumentation-file="$bolt_dir/profiles/$name.fdata" --instrumentation-file-append-pid \
    > "$bolt_dir/instrument-$name.log" 2>&1 \
    || { cat "$bolt_dir/instrument-$name.log" >&2; exit 1; }
done
echo "==> build.sh: BOLT: training"
train "$bolt_dir/bin/thanos" "$bolt_dir/work"
check_mode=()
if ((${#names[@]} > 1)); then
  check_mode=(--component-binaries)
  train "$bolt_dir/bin/thanos" "$bolt_dir/work" --component-binaries
fi
echo "==> build.sh: BOLT: optimised binaries"
for name in "${names[@]}"; do
  fdata=("$bolt_dir"/profiles/"$name".fdata.*.fdata)
  ((${#fdata[@]})) || { echo "build.sh: BOLT training wrote no profile for $name" >&2; exit 1; }
  "$merge_fdata" "${fdata[@]}" > "$bolt_dir/$name.fdata" 2> "$bolt_dir/merge-$name.log" \
    || { cat "$bolt_dir/merge-$name.log" >&2; exit 1; }
  "$llvm_bolt" "$built/$name" -o "$out/$name" -data="$bolt_dir/$name.fdata" \
    -reorder-blocks=ext-tsp -reorder-functions=cdsort -split-functions -split-all-cold \
    -split-eh -icf=safe -use-gnu-stack > "$bolt_dir/optimise-$name.log" 2>&1 \
    || { cat "$bolt_dir/optimise-$name.log" >&2; exit 1; }
done
rm -rf "$bolt_dir/bin"
echo "==> build.sh: BOLT: the optimised binaries run the training workload once more"
train "$out/thanos" "$bolt_dir/work" "${check_mode[@]}" --repeat 1
echo "==> build.sh: binaries in $out"
