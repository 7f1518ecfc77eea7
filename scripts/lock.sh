#!/usr/bin/env bash
# Write the lock files: every package pinned, with the sha256 of each of its files, for Python 3.11 on linux
# x86_64 (the image's base, and CI's machine), wheels only; resolved by uv (a dev tool, so pinned itself):
#   locks/runtime.txt    pyproject.toml's dependencies and build backend: what the image installs (Dockerfile)
#   locks/dev.txt        the same at the same versions, and the `dev` extras: what scripts/setup.sh installs (so CI)
#   locks/pyairbyte.txt  locks/pyairbyte.in: the environment scripts/setup_pyairbyte.sh makes (demo, PyAirbyte tests)
# A version already locked stays unless an argument (any of `uv pip compile`'s) frees it: `--upgrade-package
# airbyte-cdk` moves that package and what it needs, `--upgrade` everything. After a new airbyte-cdk, run
# unit_tests/test_cdk_internals.py: it names each CDK internal the connector relies on that moved.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# pyproject.toml's build-system requires (setuptools), so that the package installs without build isolation.
build_requires="$(sed -n 's/^requires = \[\(.*\)\]$/\1/p' pyproject.toml | tr -d '" ' | tr ',' '\n')"
arguments=("$@")

# lock OUTPUT WHAT [INPUT OR OPTION...]: OUTPUT resolved from the inputs, under a header saying WHAT it is.
lock() {
  local output="$1" what="$2"
  shift 2
  .venv/bin/uv pip compile --quiet --no-header --generate-hashes --no-strip-extras --only-binary :all: \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 --output-file "$output" "$@" "${arguments[@]}"
  {
    echo "# $what"
    echo "# For Python 3.11 on linux x86_64. Written by \`bash scripts/lock.sh\` (uv pip compile --generate-hashes),"
    echo "# which keeps these versions unless told otherwise; do not edit by hand."
    cat "$output"
  } >"$output.new"
  mv "$output.new" "$output"
}

lock locks/runtime.txt "What the image installs: pip install --require-hashes --only-binary :all: -r locks/runtime.txt" \
  pyproject.toml - <<<"$build_requires"
lock locks/dev.txt "What scripts/setup.sh installs: runtime.txt's versions, and the dev extras (tests, lint, uv)" \
  --extra dev --constraint locks/runtime.txt pyproject.toml - <<<"$build_requires"
lock locks/pyairbyte.txt "What scripts/setup_pyairbyte.sh installs into .venv-pyairbyte: PyAirbyte (demo, tests)" \
  locks/pyairbyte.in
bash scripts/setup.sh
