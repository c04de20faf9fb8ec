#!/usr/bin/env bash
# Builds the FerretDB wrapper (main.go) against FerretDB's module source with the patches of
# this directory applied (id-pushdown.patch, then read-fields.patch), into the file given as
# the only argument.
#
# Only the patches are kept in the repository: the source comes from the Go module proxy
# (checked against go.sum), is copied under .local/build/ and patched there, and the
# wrapper is built with a copy of go.mod that replaces the module by that copy.
set -euo pipefail

out=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
work=$(realpath -m "$here/../../.local/build/ferretdb")
module=github.com/FerretDB/FerretDB
version=$(cd "$here" && go list -m -f '{{.Version}}' "$module")

cd "$here"
download=$(go mod download -json "$module@$version")
pristine=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$download")
test -d "$pristine" || { echo "no source directory for $module@$version" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
cp -r "$pristine" "$work/src"
chmod -R u+w "$work/src" # the module cache is read-only
for p in "$here"/*.patch; do # in name order: each applies on top of the ones before
	patch --quiet --directory="$work/src" --strip=1 --forward <"$p"
done

cp go.mod "$work/go.mod"
cp go.sum "$work/go.sum"
go mod edit -replace="$module=$work/src" "$work/go.mod"

mkdir -p "$(dirname "$out")"
go build -modfile="$work/go.mod" -o "$out.tmp" .
mv "$out.tmp" "$out" # a running server keeps its old binary
