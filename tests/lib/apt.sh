# shellcheck shell=bash
# ensure_debian_package SUITE PACKAGE BINARY [OPTION...]: installs Debian's
# PACKAGE with apt-get (and OPTIONs, e.g. --no-install-recommends) when BINARY is
# missing (as root, or through sudo). While it installs,
# a policy-rc.d that refuses every start (Debian's own mechanism) keeps the
# package from starting a daemon of its own, unless the machine has one already.
ensure_debian_package() {
    local suite=$1 package=$2 binary=$3
    shift 3
    [[ -x $binary ]] && return 0
    echo "$suite: $binary is missing; installing Debian's $package with apt-get"
    local as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "$suite: not root and no sudo; install the package $package first" >&2
            return 1
        }
        as_root=(sudo)
    fi
    local guard="" status=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$guard" >/dev/null
        "${as_root[@]}" chmod 755 "$guard"
    fi
    "${as_root[@]}" apt-get update -q >/dev/null &&
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q "$@" "$package" >/dev/null ||
        status=$?
    [[ -z $guard ]] || "${as_root[@]}" rm -f "$guard"
    return "$status"
}
