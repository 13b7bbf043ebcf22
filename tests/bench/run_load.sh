#!/usr/bin/env bash
# Load benchmark of parc-server: N simulated agents (each a real mutual-TLS gRPC
# connection with its own key and certificate, all in one parc-load process)
# against a parc-server that parc-load starts and stops itself.
#
#   tests/bench/run_load.sh [N] [BUILD_DIR] [OUTPUT_FILE] [-- extra parc-load options]
#
#   N            simulated agents, default 1000. The full target is 10,000:
#                  tests/bench/run_load.sh 10000
#                (~30 s to connect all, ~1.5 GB RSS in parc-load; the fd hard
#                limit, 20,000 here, caps N below ~19,800.)
#   BUILD_DIR    default /work/main/build (needs tests/bench/parc-load and
#                server/parc-server already built: this script builds nothing)
#   OUTPUT_FILE  default load-N-YYYYmmdd-HHMMSS.txt in the current directory
#
# Extra options go to parc-load after "--", e.g.
#   tests/bench/run_load.sh 1000 build-load out.txt -- --delta-seconds 20 --push-rounds 10
# (see build/tests/bench/parc-load --help). Not part of ctest: on two shared
# cores, run it on a quiet machine and compare runs from the same session.
set -euo pipefail

n=1000
build=/work/main/build
out=""
positional=()
while [[ $# -gt 0 ]]; do
  if [[ $1 == -- ]]; then shift; break; fi
  positional+=("$1"); shift
done
[[ ${#positional[@]} -ge 1 ]] && n=${positional[0]}
[[ ${#positional[@]} -ge 2 ]] && build=${positional[1]}
[[ ${#positional[@]} -ge 3 ]] && out=${positional[2]}
[[ -n $out ]] || out=load-$n-$(date +%Y%m%d-%H%M%S).txt

load=$build/tests/bench/parc-load
server=$build/server/parc-server
for exe in "$load" "$server"; do
  if [[ ! -x $exe ]]; then
    echo "run_load.sh: $exe is not built (cmake --build $build --target parc-load parc-server)" >&2
    exit 1
  fi
done

# parc-load raises its soft fd limit to the hard one itself; the server inherits it.
echo "# $(date -Is) $(uname -n) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out"
echo "# $load --server-binary $server --agents $n $*" | tee -a "$out"
"$load" --server-binary "$server" --agents "$n" "$@" 2>&1 | tee -a "$out"
rc=${PIPESTATUS[0]}
echo "output written to $out"
exit "$rc"
