#!/usr/bin/env bash
# check-generated.sh fails when committed generated code is stale. It runs
# `make generate`, then compares with what is committed. clang's BTF type
# order depends on the checkout's path (the same sources in two folders give
# objects whose .BTF lists the same types in another order), so an object
# counts as unchanged when its instructions, sections and (sorted) BTF are
# the same; it is then restored to the committed bytes. Every other file
# must match to the byte.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory generate >/dev/null

objdump=$(command -v llvm-objdump-19 || command -v llvm-objdump)
semantic() { # file -> normalised description
	"$objdump" -d --no-show-raw-insn "$1" | tail -n +3
	"$objdump" -h "$1" | tail -n +3 | awk '{print $2, $3}'
	bpftool btf dump file "$1" format raw | sed 's/^\[[0-9]*\] //; s/type_id=[0-9]*//g' | sort
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in $(git diff --name-only -- '*.o'); do
	git show "HEAD:$f" >"$tmp/committed.o"
	if diff <(semantic "$tmp/committed.o") <(semantic "$f") >/dev/null; then
		git checkout -q -- "$f"
	fi
done
if ! git diff --exit-code --stat -- .; then
	echo "generated code is stale: run 'make generate' and commit" >&2
	exit 1
fi
echo "generated code is up to date"
