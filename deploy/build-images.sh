#!/usr/bin/env bash
# Builds the three component images (thanos-receive, thanos-store, thanos-query) from
# deploy/Containerfile with buildah, offline when --base scratch, and optionally checks them.
#
#   deploy/build-images.sh [--base scratch|ubi|IMAGE] [--binary PATH] [--tag TAG]
#                          [--prefix NAME_PREFIX] [--pgo] [--check] [--check-only]
#
#   --base      runtime base: `scratch` (offline; statically linked binary expected),
#               `ubi` (registry.access.redhat.com/ubi9/ubi-minimal, needs that registry) or
#               any image reference. Default: ubi.
#   --binary    a prebuilt `thanos` binary; thanos-receive, thanos-store and thanos-query must
#               sit beside it (cargo builds all four). Without it a static release build is
#               made: cargo build --release --target x86_64-unknown-linux-gnu with
#               RUSTFLAGS="-C target-feature=+crt-static".
#               A dynamically linked binary is accepted for `scratch` test builds: its ELF
#               loader and shared libraries (from ldd) are copied into the image.
#   --pgo       without --binary: make the static release build profile-guided
#               (deploy/pgo/build.sh --static; about 20 minutes, needs python3 and promtool).
#               Release images are built this way.
#   --tag       image tag (default: the version printed by `thanos --version`).
#   --prefix    image name prefix (default: localhost/), e.g. a registry path.
#   --check     after building, run every image's entrypoint with `<component> --version`
#               (the Thanos argument convention) as a random non-root UID with group 0 and
#               as the image's USER, and check the image config (numeric non-root USER,
#               group-0 writable workdir).
#   --check-only  only run the checks, against images built before.
#
# Environment: STORAGE_DRIVER (default vfs) and BUILDAH_ISOLATION (default chroot) are
# passed to buildah; both defaults work without a container engine or user namespaces.
# CARGO_TARGET_DIR is honoured by the release build.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
components=(receive store query)

base=ubi
binary=""
tag=""
prefix="localhost/"
check=false
build=true
pgo=false

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "build-images: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="${2:?--base needs a value}"; shift 2 ;;
    --base=*) base="${1#*=}"; shift ;;
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --binary=*) binary="${1#*=}"; shift ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --tag=*) tag="${1#*=}"; shift ;;
    --prefix) prefix="${2?--prefix needs a value}"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --check) check=true; shift ;;
    --pgo) pgo=true; shift ;;
    --check-only) check=true; build=false; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

case "$base" in
  ubi) base_image=registry.access.redhat.com/ubi9/ubi-minimal ;;
  *) base_image="$base" ;;
esac

command -v buildah >/dev/null 2>&1 || die "buildah not found (Debian: apt-get install -y buildah)"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

is_dynamic() { readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }

if $pgo && [ -n "$binary" ]; then
  die "--pgo builds the binary itself; it cannot be combined with --binary"
fi
if [ -z "$binary" ] && $build; then
  if $pgo; then
    echo "==> no --binary: static profile-guided release build (deploy/pgo/build.sh --static)"
    "$repo/deploy/pgo/build.sh" --static
    binary="${CARGO_TARGET_DIR:-$repo/target}/pgo/x86_64-unknown-linux-gnu/release/thanos"
  else
    echo "==> no --binary: static release build (cargo build --release, crt-static)"
    (cd "$repo" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
      cargo build --release --locked -p thanos-cmd --bins --target x86_64-unknown-linux-gnu)
    binary="${CARGO_TARGET_DIR:-$repo/target}/x86_64-unknown-linux-gnu/release/thanos"
  fi
fi

if [ -n "$binary" ]; then
  [ -x "$binary" ] || die "not an executable: $binary"
  bindir="$(cd "$(dirname "$binary")" && pwd)"
  for c in "${components[@]}"; do
    [ -x "$bindir/thanos-$c" ] || die "missing $bindir/thanos-$c beside $binary (cargo build -p thanos-cmd --bins)"
  done
  version="$("$binary" --version | awk '{print $2}')"
  [ -n "$version" ] || die "$binary --version printed no version"
fi
if [ -z "$tag" ]; then
  [ -n "${version:-}" ] || die "--check-only needs --tag or --binary (to learn the version)"
  tag="$version"
fi

image() { printf '%s%s:%s' "$prefix" "thanos-$1" "$tag"; }

if $build; then
  ctx="$(mktemp -d "${TMPDIR:-/tmp}/thanos-image-ctx.XXXXXX")"
  trap 'rm -rf "$ctx"' EXIT
  mkdir -p "$ctx/bin" "$ctx/rootfs/var/thanos" "$ctx/rootfs/tmp"
  # Group 0 writable: OpenShift runs the process as a random UID whose group is 0.
  chmod 0775 "$ctx/rootfs/var/thanos"
  chmod 1777 "$ctx/rootfs/tmp"
  for c in "${components[@]}"; do
    install -m 0755 "$bindir/thanos-$c" "$ctx/bin/thanos-$c"
  done
  if [ "$base_image" = scratch ]; then
    # TLS to S3 endpoints needs trust roots; UBI brings its own bundle.
    for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
      if [ -r "$bundle" ]; then
        install -D -m 0644 "$bundle" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
        break
      fi
    done
    if is_dynamic "$binary"; then
      echo "==> $binary is dynamically linked: copying its loader and libraries into the scratch image (test builds only)"
      ldd "$binary" | awk '/=> \//{print $3} /^\t\//{print $1}' | while read -r lib; do
        install -D -m 0755 "$(readlink -f "$lib")" "$ctx/rootfs$lib"
      done
    fi
  elif is_dynamic "$binary"; then
    echo "build-images: warning: $binary is dynamically linked; it needs a glibc no newer than the base image's (UBI 9: 2.34)" >&2
  fi

  for c in "${components[@]}"; do
    start=$SECONDS
    buildah bud --quiet --layers=false --pull=missing \
      --build-arg "BASE=$base_image" --build-arg "VERSION=$version" \
      --target "thanos-$c" -t "$(image "$c")" -f "$here/Containerfile" "$ctx" >/dev/null
    echo "built $(image "$c") from $base_image in $((SECONDS - start))s"
  done
fi

if $check; then
  failures=0
  uid=1000650000 # a UID from a typical OpenShift namespace range; group 0 as restricted-v2 gives
  for c in "${components[@]}"; do
    img="$(image "$c")"
    user="$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$img")"
    workdir="$(buildah inspect --type image --format '{{.OCIv1.Config.WorkingDir}}' "$img")"
    mapfile -t entrypoint < <(buildah inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$img" | sed '/^$/d')
    case "${user%%:*}" in
      ''|0|*[!0-9]*) echo "FAIL $img: USER '$user' is not a numeric non-root user"; failures=$((failures + 1)) ;;
    esac
    [ "${#entrypoint[@]}" -gt 0 ] || { echo "FAIL $img: no ENTRYPOINT"; failures=$((failures + 1)); continue; }
    ctr="$(buildah from --pull-never --quiet "$img")"
    mnt="$(buildah mount "$ctr")"
    perms="$(stat -c '%g %A' "$mnt$workdir")"
    buildah umount "$ctr" >/dev/null
    if ! [[ "$perms" =~ ^0\ d...rwx ]]; then
      echo "FAIL $img: workdir $workdir is not group-0 writable (gid and mode: $perms)"
      failures=$((failures + 1))
    fi
    # Thanos convention: the subcommand first, as the manifests pass it. Once as a random
    # UID with group 0 (restricted-v2), once as the image's own USER (anyuid, podman run).
    for as in "$uid:0" "$user"; do
      if out="$(buildah run --user "$as" "$ctr" -- "${entrypoint[@]}" "$c" --version 2>&1)" \
        && [ "$out" = "thanos-$c ${version:-$tag}" ]; then
        echo "ok   $img: '${entrypoint[*]} $c --version' as user $as printed '$out'"
      else
        echo "FAIL $img: '${entrypoint[*]} $c --version' as user $as printed '$out'"
        failures=$((failures + 1))
      fi
    done
    buildah rm "$ctr" >/dev/null
  done
  [ "$failures" -eq 0 ] || die "$failures image check(s) failed"
fi
