#!/usr/bin/env bash
# Puts kkrun on PATH for the rest of the job (action.yml's install step).
#
# KKRUN_VERSION set (a release tag such as v0.1.0): download that release's
# archive for this runner and verify it against the release's SHA256SUMS.
# Otherwise: build the action's own checkout with `cargo install --locked`
# into KKRUN_ROOT, unless the cache step already restored it there.
set -euo pipefail

root="${KKRUN_ROOT:?KKRUN_ROOT must be set}"
bin="$root/bin"
mkdir -p "$bin"

error() {
  echo "::error title=kkrun action::$1"
  exit 2
}

if [ -n "${KKRUN_VERSION:-}" ]; then
  case "${RUNNER_OS:-}-${RUNNER_ARCH:-}" in
    Linux-X64) target=x86_64-unknown-linux-musl ;;
    Linux-ARM64) target=aarch64-unknown-linux-musl ;;
    macOS-X64) target=x86_64-apple-darwin ;;
    macOS-ARM64) target=aarch64-apple-darwin ;;
    *) error "no kkrun release binary for ${RUNNER_OS:-?} ${RUNNER_ARCH:-?} (leave input version empty to build from source)" ;;
  esac
  case "$KKRUN_VERSION" in
    *[!A-Za-z0-9._-]*) error "input version: '$KKRUN_VERSION' is not a release tag such as v0.1.0" ;;
  esac
  archive="kkrun-$KKRUN_VERSION-$target.tar.gz"
  if [ -n "${KKRUN_RELEASE_URL:-}" ]; then
    # A mirror of the release files (the job's env sets it).
    base="${KKRUN_RELEASE_URL%/}"
  else
    repo="${KKRUN_RELEASE_REPO:-}"
    [ -n "$repo" ] || error "cannot tell which repository's releases to download from (set KKRUN_RELEASE_URL)"
    base="${GITHUB_SERVER_URL:-https://github.com}/$repo/releases/download/$KKRUN_VERSION"
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "kkrun action: downloading $base/$archive"
  curl --fail --silent --show-error --location --retry 3 -o "$work/$archive" "$base/$archive" \
    || error "cannot download $archive from release $KKRUN_VERSION of $repo"
  curl --fail --silent --show-error --location --retry 3 -o "$work/SHA256SUMS" "$base/SHA256SUMS" \
    || error "cannot download SHA256SUMS from release $KKRUN_VERSION of $repo"
  expected="$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' "$work/SHA256SUMS")"
  [ -n "$expected" ] || error "SHA256SUMS of $KKRUN_VERSION does not list $archive"
  if command -v sha256sum >/dev/null 2>&1; then
    actual="$(sha256sum "$work/$archive" | awk '{ print $1 }')"
  else
    actual="$(shasum -a 256 "$work/$archive" | awk '{ print $1 }')"
  fi
  [ "$actual" = "$expected" ] \
    || error "$archive has SHA-256 $actual but SHA256SUMS says $expected; not installing it"
  tar -xzf "$work/$archive" -C "$work"
  install -m 0755 "$work/kkrun" "$bin/kkrun"
elif [ -x "$bin/kkrun" ]; then
  echo "kkrun action: using the cached build in $bin"
else
  src="${KKRUN_SOURCE:?KKRUN_SOURCE must be set}"
  command -v cargo >/dev/null 2>&1 \
    || error "building kkrun needs cargo (install Rust first, e.g. with dtolnay/rust-toolchain, or set input version to download a release)"
  echo "kkrun action: building kkrun from $src (cargo install --locked)"
  cargo install --locked --path "$src" --root "$root"
fi
echo "$bin" >> "${GITHUB_PATH:?}"
echo "kkrun=$bin/kkrun" >> "${GITHUB_OUTPUT:?}"
"$bin/kkrun" --version
