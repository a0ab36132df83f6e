#!/usr/bin/env bash
# Profile-guided release build of the thanos binaries (thanos, thanos-receive, thanos-store,
# thanos-query): what the release images ship (deploy/build-images.sh --pgo) and what the
# PromQL benchmark measures with PGO=1.
#
#   deploy/pgo/build.sh [--static] [--thanos-only]
#
#   --static       link statically (-C target-feature=+crt-static), as the images need
#   --thanos-only  build only the `thanos` binary in step 4, not the three thin ones
#
# Steps (about 20 minutes on 2 cores; two release builds with fat LTO):
#   1. an instrumented release build (-Cprofile-generate) of the thanos binary and of the
#      helpers rw-load and s3-test-server, into $TARGET/pgo-instrumented;
#   2. deploy/pgo/train.py runs the instrumented thanos as store (FILESYSTEM and S3 buckets),
#      receive (fed by rw-load) and query, and sends the queries of deploy/pgo/queries.txt;
#   3. llvm-profdata merges the profiles into $TARGET/pgo-data/thanos.profdata;
#   4. the release build with that profile (-Cprofile-use), into $TARGET/pgo; the binaries
#      end up in $TARGET/pgo/<host triple>/release/.
# $TARGET is CARGO_TARGET_DIR or target/. Extra RUSTFLAGS are passed to both builds.
# Needs: cargo, python3, promtool (Debian: prometheus), and llvm-profdata of the toolchain's
# LLVM version, from the rustup component llvm-tools (installed here when missing).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
flags="${RUSTFLAGS:-}"
bins=(--bins)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --static) flags="$flags -C target-feature=+crt-static" ;;
    --thanos-only) bins=(--bin thanos) ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
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

data="$target/pgo-data"
rm -rf "$data"
mkdir -p "$data/profiles"
cd "$repo"
# --target keeps RUSTFLAGS off build scripts and proc macros: only the binaries' code is
# instrumented and optimised with the profile.
echo "==> build.sh: instrumented build"
RUSTFLAGS="$flags -Cprofile-generate=$data/profiles" CARGO_TARGET_DIR="$target/pgo-instrumented" \
  cargo build --release --locked --target "$host" -p thanos-cmd -p thanos-test-support \
    --bin thanos --bin rw-load --bin s3-test-server
bin="$target/pgo-instrumented/$host/release"

echo "==> build.sh: training"
python3 deploy/pgo/train.py --thanos "$bin/thanos" --rw-load "$bin/rw-load" \
  --s3-server "$bin/s3-test-server" --work "$data/work" --profile-dir "$data/profiles"
shopt -s nullglob
raw=("$data"/profiles/thanos-*.profraw)
((${#raw[@]})) || { echo "build.sh: training wrote no profiles" >&2; exit 1; }
"$profdata" merge -o "$data/thanos.profdata" "${raw[@]}"
rm -rf "$data/work"
echo "==> build.sh: merged ${#raw[@]} profiles into $data/thanos.profdata"

echo "==> build.sh: optimised build"
RUSTFLAGS="$flags -Cprofile-use=$data/thanos.profdata" CARGO_TARGET_DIR="$target/pgo" \
  cargo build --release --locked --target "$host" -p thanos-cmd "${bins[@]}"
echo "==> build.sh: binaries in $target/pgo/$host/release"
