#!/usr/bin/env bash
# Build the kubemedic image offline with buildah: a static binary built on this
# machine (glibc, +crt-static), placed on `scratch` by packaging/Containerfile.prebuilt,
# which mirrors the final stage of ./Dockerfile. Where the rust build image can be
# pulled, `buildah build -f Dockerfile .` (or docker build) builds from source instead.
#
#   bash scripts/image.sh [TAG]          # default tag localhost/kubemedic:dev
#   KUBEMEDIC_BIN=path bash scripts/image.sh   # use an already built static binary
#   IMAGE_ARCHIVE=out.tar bash scripts/image.sh  # also write an OCI archive
#   BUILDAH_ROOT=dir bash scripts/image.sh       # image storage of its own (tests)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-localhost/kubemedic:dev}
TRIPLE=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kubemedic/target}

if ! command -v buildah >/dev/null; then
  echo "buildah missing: apt-get install -y --no-install-recommends buildah" >&2
  exit 69
fi

BIN=${KUBEMEDIC_BIN:-}
if [ -z "$BIN" ]; then
  (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$TRIPLE" -p kubemedic)
  BIN=$CARGO_TARGET_DIR/$TRIPLE/release/kubemedic
fi
if readelf -l "$BIN" | grep -q INTERP; then
  echo "$BIN is dynamically linked; a scratch image needs a static binary" >&2
  exit 65
fi

CTX=$(mktemp -d "${TMPDIR:-/tmp}/kubemedic-image.XXXXXX")
trap 'rm -rf "$CTX"' EXIT
install -m 0755 "$BIN" "$CTX/kubemedic"
strip "$CTX/kubemedic" 2>/dev/null || true
cp /etc/ssl/certs/ca-certificates.crt "$CTX/"
mkdir -p "$CTX/etc/kubemedic" "$CTX/var/lib/kubemedic"
cp -r "$ROOT/rules" "$ROOT/prompts" "$CTX/etc/kubemedic/"

# vfs + chroot: no overlay mounts or user namespaces needed; nothing is pulled (FROM scratch).
BUILDAH=(buildah --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")
if [ -n "${BUILDAH_ROOT:-}" ]; then
  BUILDAH+=(--root "$BUILDAH_ROOT/storage" --runroot "$BUILDAH_ROOT/run")
fi
"${BUILDAH[@]}" build --isolation chroot --pull=never --layers=false \
  -f "$ROOT/packaging/Containerfile.prebuilt" -t "$TAG" "$CTX"
if [ -n "${IMAGE_ARCHIVE:-}" ]; then
  rm -f "$IMAGE_ARCHIVE"
  "${BUILDAH[@]}" push "$TAG" "oci-archive:$IMAGE_ARCHIVE:$TAG"
fi
echo "built $TAG"
