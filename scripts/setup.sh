#!/usr/bin/env bash
# Everything `make test` and `make demo` need on a fresh Debian 12 machine, as root, idempotently:
# apt packages, kernel headers wired for bcc, and a venv that sees Debian's bcc.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv"

# Debian packages. `python3-bpfcc` is bcc's Python module; linux-headers-amd64 gives bcc a headers tree
# when the running kernel has none; wrk/nginx/haproxy are the clients, reals and baselines of tests and bench;
# clang-format checks bpf/ against bpf/.clang-format (tests/unit/test_bpf_format.py).
packages=(python3-bpfcc python3-venv python3-dev libnetfilter-queue-dev linux-headers-amd64 iptables
          nftables iproute2 tcpdump curl wrk nginx-light haproxy ethtool gcc make clang-format)

say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "setup: must run as root (it installs apt packages and wires kernel headers)" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/lbxdp-apt.log 2>&1; then
        tail -n 20 /tmp/lbxdp-apt.log >&2
        echo "setup: apt-get install failed (log: /tmp/lbxdp-apt.log)" >&2
        exit 1
    fi
    # The packaged services must not run on the host: tests start their own copies inside namespaces.
    for svc in nginx haproxy; do
        systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
    done
fi

# bcc compiles against /lib/modules/$(uname -r)/build. This kernel ships no headers package, so point
# build/source at Debian's amd64 and common trees. Add links only; never replace what is there.
kdir="/lib/modules/$(uname -r)"
if [ ! -e "$kdir/build" ]; then
    arch_tree=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$arch_tree" ]; then
        echo "setup: no /usr/src/linux-headers-*-amd64 tree found after installing linux-headers-amd64" >&2
        exit 1
    fi
    common_tree=${arch_tree%-amd64}-common
    mkdir -p "$kdir"
    ln -s "$arch_tree" "$kdir/build"
    say "linked $kdir/build -> $arch_tree (no headers for kernel $(uname -r))"
    if [ ! -e "$kdir/source" ] && [ -d "$common_tree" ]; then
        ln -s "$common_tree" "$kdir/source"
        say "linked $kdir/source -> $common_tree"
    fi
fi

# The venv comes from Debian's python3 so that --system-site-packages exposes python3-bpfcc.
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv from /usr/bin/python3 (with system site-packages, for bcc)"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
stamp="$venv/.installed-$(sha1sum "$here/pyproject.toml" | cut -c1-12)"
if [ ! -e "$stamp" ]; then
    say "installing lbxdp and its Python dependencies into $venv (log: $venv/pip.log)"
    if ! "$venv/bin/pip" install --disable-pip-version-check -e "$here[test]" >"$venv/pip.log" 2>&1; then
        tail -n 20 "$venv/pip.log" >&2
        echo "setup: pip install failed (full log: $venv/pip.log)" >&2
        exit 1
    fi
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi
"$venv/bin/python" -c "import bcc, netfilterqueue, scapy, pyroute2" \
    || { echo "setup: the venv cannot import bcc/netfilterqueue/scapy/pyroute2" >&2; exit 1; }
