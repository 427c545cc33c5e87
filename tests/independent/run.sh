#!/bin/sh
# Cross-check of docs/FORMAT.md: the independent Python implementation (written from FORMAT.md
# only) against the test vectors and a `kinko` binary.
# usage: tests/independent/run.sh KINKO_BINARY [WORK_DIR]
#   WORK_DIR holds the venv (venv/) and scratch files (work/); default: a new temporary
#   directory, removed afterwards. A venv already in WORK_DIR is reused.
set -eu
export PYTHONDONTWRITEBYTECODE=1
[ $# -ge 1 ] || { echo "usage: $0 KINKO_BINARY [WORK_DIR]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
kinko=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -x "$kinko" ] || { echo "$0: $kinko is not an executable" >&2; exit 2; }
if [ $# -ge 2 ]; then
  mkdir -p "$2"; dir=$(cd "$2" && pwd)
else
  dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
fi
if [ ! -x "$dir/venv/bin/python" ]; then
  python3 -m venv "$dir/venv"
fi
# Wheels only: no compiler or Rust toolchain needed, and no build that differs by machine.
"$dir/venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
  -r "$here/requirements.txt"
py="$dir/venv/bin/python"
rm -rf "$dir/work"; mkdir -p "$dir/work"
status=0
echo "== test vectors"
"$py" "$here/run_vectors.py" "$here/../../core/tests/vectors" || status=1
echo "== round trips with $kinko"
"$py" "$here/roundtrip.py" "$kinko" "$dir/work" || status=1
echo "== crafted errors: independent opener vs kinko open"
"$py" "$here/diff_errors.py" "$kinko" "$dir/work" || status=1
[ $status -eq 0 ] && echo "independent cross-check: all OK" || echo "independent cross-check: FAILED" >&2
exit $status
