# shellcheck shell=bash
# ensure_node_modules DIR: DIR/node_modules exactly as DIR/package-lock.json
# says, installed with `npm ci` from the npm registry. Skipped while the lockfile
# is the one last installed.
ensure_node_modules() {
    local dir=$1
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
        echo "node: Node.js 20 or later and npm are required" >&2
        return 1
    }
    if [[ -f $dir/node_modules/.newsapi-lock ]] && cmp -s "$dir/package-lock.json" "$dir/node_modules/.newsapi-lock"; then
        return 0
    fi
    echo "node: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.newsapi-lock"
}
