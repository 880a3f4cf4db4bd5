#!/usr/bin/env bash
# Writes docker/requirements.lock: the runtime dependency closure of pyproject.toml (no extras,
# not the project itself), at the versions installed in .venv, which are the ones the tests ran
# with, and with PyPI's hashes so the image build installs exactly these files.
# Run from anywhere after changing [project].dependencies and `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Resolved for the Python of the image, not of this machine.
python_version=$(sed -n 's/^ARG PYTHON_VERSION=//p' docker/Dockerfile)
uv_version=0.13.9

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
uv=$(command -v uv || true)
if [ -z "$uv" ]; then
    python3.11 -m venv "$work/uv"
    "$work/uv/bin/pip" install --quiet "uv==$uv_version"
    uv="$work/uv/bin/uv"
fi

# --all: setuptools and wheel are runtime requirements (tensorflow, astunparse).
.venv/bin/pip freeze --all --exclude-editable > "$work/venv.txt"
"$uv" pip compile pyproject.toml --constraint "$work/venv.txt" --generate-hashes \
    --python-version "$python_version" --python-platform x86_64-manylinux_2_28 \
    --no-header --quiet --output-file "$work/lock.txt"

# A package the venv lacks would have been resolved to PyPI's newest: untested, so refuse.
untested=$(grep -oE '^[a-z0-9._-]+==[^ ]+' "$work/lock.txt" \
    | grep -vixF -f <(awk -F'==' '{n = tolower($1); gsub(/[._]/, "-", n); print n "==" $2}' \
        "$work/venv.txt") || true)
if [ -n "$untested" ]; then
    echo "not installed in .venv (run make setup first): $untested" >&2
    exit 1
fi

{
    cat <<HEADER
# Runtime dependencies of the image, exact versions with hashes; the image installs them with
# pip install --no-deps --require-hashes, then pip check. Generated, do not edit: regenerate with
#   docker/lock.sh
# after changing [project].dependencies in pyproject.toml and running make setup. It resolves
# pyproject.toml with uv for Python $python_version on x86_64-manylinux_2_28 (the image's base),
# constrained to the versions in .venv (pip freeze): the ones the tests ran with.
HEADER
    sed "s|$work/venv.txt|.venv (pip freeze)|" "$work/lock.txt"
} > docker/requirements.lock
