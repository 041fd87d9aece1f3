#!/usr/bin/env bash
# install-deps.sh installs the programs the test suite drives for real
# (servers, clients, TLS stacks) and the toolchain `make generate` needs.
# It only installs what is missing, and does nothing when not root or not on a
# Debian-like system (the tests that need a missing program then skip).
set -euo pipefail

want=(curl nginx python3 iproute2 clang-19 llvm-19 libbpf-dev bpftool wrk gnutls-bin nodejs openssl netsniff-ng nftables prometheus python3-grpcio)
have_cmd() { command -v "$1" >/dev/null 2>&1; }

if [ "$(id -u)" != 0 ] || ! have_cmd apt-get; then
  echo "install-deps: not root or no apt-get; skipping (tests needing missing tools will skip)"
  exit 0
fi

missing=()
for p in "${want[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# node may come from elsewhere than Debian's nodejs package.
if have_cmd node; then
  missing=("${missing[@]/nodejs}")
fi
missing=($(printf '%s\n' "${missing[@]}" | sed '/^$/d'))
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts nginx on install; the tests run their own instances.
if have_cmd systemctl; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
# Likewise prometheus (the dashboard test runs its own, on loopback).
if have_cmd systemctl; then systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true; fi
pkill -x nginx >/dev/null 2>&1 || true
