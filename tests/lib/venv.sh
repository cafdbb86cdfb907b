# shellcheck shell=bash
# ensure_venv DIR REQUIREMENTS: a Python virtual environment at DIR with exactly
# the pinned packages of REQUIREMENTS installed (from PyPI, with pip). Reused
# while REQUIREMENTS is unchanged; rebuilt from scratch when it changes.
ensure_venv() {
    local dir=$1 requirements=$2 python
    if [[ -x $dir/bin/python && -f $dir/.requirements ]] && cmp -s "$requirements" "$dir/.requirements"; then
        return 0
    fi
    python=$(command -v python3) || {
        echo "venv: python3 is required" >&2
        return 1
    }
    echo "venv: creating $dir from $requirements"
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
    cp "$requirements" "$dir/.requirements"
}
