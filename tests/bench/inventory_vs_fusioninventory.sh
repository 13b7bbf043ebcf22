#!/usr/bin/env bash
# Inventory of this machine: parc-agent against fusioninventory-agent (the peer
# GLPI users know), run alternately on the same machine, medians and ratio.
#
#   tests/bench/inventory_vs_fusioninventory.sh [BUILD_DIR] [RUNS]
#
# BUILD_DIR defaults to /work/main/build, RUNS to 5. Not part of ctest: timings
# on two shared cores are only meaningful as a ratio from one session.
set -euo pipefail

build=${1:-/work/main/build}
runs=${2:-5}
parc=$build/agent/parc-agent
work=$(mktemp -d /tmp/parc-inv-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

have_parc=1
if [[ ! -x $parc ]]; then
  echo "note: $parc is not built; measuring fusioninventory-agent only" >&2
  have_parc=0
fi
if ! command -v fusioninventory-agent >/dev/null; then
  echo "fusioninventory-agent is not installed (apt-get install fusioninventory-agent)" >&2
  exit 1
fi

now_ns() { date +%s%N; }

median() {  # milliseconds, one value per line on stdin
  sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

parc_times=()
fusion_times=()
for ((i = 1; i <= runs; i++)); do
  if ((have_parc)); then
    t0=$(now_ns)
    "$parc" inventory --json >"$work/parc.json"
    t1=$(now_ns)
    parc_times+=($(((t1 - t0) / 1000000)))
  fi
  # A fresh directory per run: fusioninventory writes one file per run, and
  # the peer must not be measured appending into a growing directory.
  out=$work/fi-out-$i
  mkdir -p "$out"
  t0=$(now_ns)
  fusioninventory-agent --local "$out" >"$work/fusion.log" 2>&1
  t1=$(now_ns)
  fusion_times+=($(((t1 - t0) / 1000000)))
done
fusion_xml=$(ls -t "$work"/fi-out-"$runs"/* | head -1)

fusion_median=$(printf '%s\n' "${fusion_times[@]}" | median)
echo "fusioninventory-agent: median ${fusion_median} ms over $runs runs (${fusion_times[*]})"
if ((have_parc)); then
  parc_median=$(printf '%s\n' "${parc_times[@]}" | median)
  echo "parc-agent inventory:  median ${parc_median} ms over $runs runs (${parc_times[*]})"
  awk -v f="$fusion_median" -v p="$parc_median" \
    'BEGIN { if (p > 0) printf "ratio fusion/parc: %.1f\n", f / p; else print "ratio fusion/parc: parc below 1 ms" }'
fi

# Software: both list installed packages; compare counts and the name:arch=version sets.
awk '
  /<SOFTWARES>/  { name = ""; arch = ""; version = ""; inside = 1; next }
  /<\/SOFTWARES>/ { if (inside) print name ":" arch "=" version; inside = 0; next }
  inside && match($0, /<(NAME|ARCH|VERSION)>[^<]*</) {
    tag = $0; sub(/^[^<]*</, "", tag); sub(/>.*/, "", tag)
    value = $0; sub(/^[^>]*>/, "", value); sub(/<.*/, "", value)
    if (tag == "NAME") name = value; else if (tag == "ARCH") arch = value; else version = value
  }' "$fusion_xml" | sort >"$work/fusion.sw"
fusion_count=$(wc -l <"$work/fusion.sw")
echo "fusioninventory-agent software: $fusion_count"
if ((have_parc)); then
  parc_count=$(jq '.software | length' "$work/parc.json")
  jq -r '.software[] | "\(.name):\(.architecture)=\(.version)"' "$work/parc.json" | sort >"$work/parc.sw"
  echo "parc-agent software:            $parc_count"
  only_fusion=$(comm -23 "$work/fusion.sw" "$work/parc.sw" | wc -l)
  only_parc=$(comm -13 "$work/fusion.sw" "$work/parc.sw" | wc -l)
  if [[ $parc_count == "$fusion_count" && $only_fusion == 0 && $only_parc == 0 ]]; then
    echo "software: agree"
  else
    echo "software: DISAGREE ($only_fusion only in fusion, $only_parc only in parc)"
    comm -3 "$work/fusion.sw" "$work/parc.sw" | head -20
  fi
fi
