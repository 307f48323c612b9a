#!/usr/bin/env bash
# peerlab's two quickstart entry points for a fresh Debian machine (run as root, or with the
# packages below already installed):
#
#   ./quickstart.sh run    set up, then run the live pipeline on the embedded default stack
#   ./quickstart.sh test   set up, then run the whole test suite
#
# Both are idempotent: packages are installed only when missing, and the traceable bitcoind is
# built once into ~/.cache/peerlab (keyed by source version and build options) and reused.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"

# What compiling peerlab itself needs (build.rs compiles eBPF C with clang and the IPC schema
# with capnp); `peerlab setup` installs the rest. The tests also need nix-instantiate (Nix files are parse-checked) and
# Debian's chromium (rehearsal reports are rendered headless and screenshotted) and nodejs
# (Foxglove's MCAP reader, @mcap/core, reads recordings in a test).
BUILD_DEPS=(clang libbpf-dev pkg-config capnproto)
TEST_DEPS=(nix-bin chromium time iproute2 curl nodejs)

install_missing() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null | grep -q '^ii' || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: missing Debian packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "installing ${missing[*]}" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

mount_tracefs() {
    # eBPF uprobes need tracefs; some machines do not mount it by default.
    if [ ! -e /sys/kernel/tracing/uprobe_events ] && [ "$(id -u)" -eq 0 ]; then
        mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
    fi
}

case "${1:-}" in
    run)
        shift
        install_missing "${BUILD_DEPS[@]}"
        mount_tracefs
        cargo build --release --locked
        ./target/release/peerlab setup
        exec ./target/release/peerlab run "$@"
        ;;
    test)
        shift
        install_missing "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"
        mount_tracefs
        cargo build --locked
        # --containers: the tests that run nodes in containers need podman's Docker API and
        # the images built from the binaries setup provides.
        ./target/debug/peerlab setup --containers
        rm -rf target/test-figures
        cargo test --locked "$@"
        # The measured figures of the tests that report them (cargo hides passing output).
        for figures in target/test-figures/*.txt; do
            if [ -e "$figures" ]; then
                echo "== $(basename "$figures" .txt)"
                cat "$figures"
                echo
            fi
        done
        ;;
    *)
        echo "usage: $0 run [peerlab run options] | test [cargo test options]" >&2
        exit 2
        ;;
esac
