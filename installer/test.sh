#!/usr/bin/env bash
# Builds Parc (warnings are errors) and runs the whole test suite through ctest.
# Installs the Debian packages it needs first. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
./installer/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build-ci}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARC_WERROR=ON ${PARC_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
# Most tests wait on processes and sockets rather than CPU: run 4 at a time.
cd "$BUILD_DIR"
ctest --output-on-failure -j "${CTEST_JOBS:-4}" --timeout 600
