#!/bin/sh
# Vendors the dashboard's JavaScript from the npm registry (run by `make vendor`; the files are
# committed so the dashboard works offline and tests never need the network).
# Each package: name, version, sha256 of its npm tarball, files to keep.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() {
    name=$1 version=$2 sum=$3; shift 3
    (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
    tgz="$tmp/$name-$version.tgz"
    echo "$sum  $tgz" | sha256sum -c --quiet - || { echo "checksum mismatch for $name@$version" >&2; exit 1; }
    mkdir -p "$tmp/$name" "$here/$name"
    tar xzf "$tgz" -C "$tmp/$name"
    for f in "$@"; do cp "$tmp/$name/package/$f" "$here/$name/"; done
    echo "$name@$version (npm, sha256 $sum)" > "$here/$name/VERSION"
}
fetch uplot 1.6.32 4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d \
    LICENSE dist/uPlot.iife.min.js dist/uPlot.min.css
