#!/usr/bin/env bash
# Installs every package Parc needs to build, test and run on Debian 12.
# Idempotent: packages already present are left alone, and apt is only asked
# when something is missing. Run as root.
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsqlite3-dev libssl-dev libarchive-dev libzstd-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libtomlplusplus-dev
  libcpp-httplib-dev
  catch2
)
# Used by the tests as independent sources and peers.
TEST_PACKAGES=(dpkg iproute2 openssl sqlite3 procps tar zstd jq debootstrap)
# Network installation (docs/netboot.md): dnsmasq-base is the dnsmasq binary
# without the system service the "dnsmasq" package would start on port 53;
# ipxe gives the TFTP root its undionly.kpxe and ipxe.efi; util-linux has
# unshare/nsenter for the test's network namespaces; curl fetches over HTTPS
# and TFTP as a booting machine would; debconf, libxml2-utils and python3-yaml
# check the rendered preseed, autounattend.xml and cloud-init files.
TEST_PACKAGES+=(dnsmasq-base ipxe util-linux curl debconf libxml2-utils python3-yaml)
# Only for the benchmarks (tests/bench).
BENCH_PACKAGES=(fusioninventory-agent nginx-light casync)

want=("${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
if [[ "${1:-}" == "--bench" ]]; then want+=("${BENCH_PACKAGES[@]}"); fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
