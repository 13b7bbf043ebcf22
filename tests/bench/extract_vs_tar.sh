#!/bin/bash
# Extraction speed: Parc (verify + ExtractPayload, as the agent does) against
# GNU `tar -xf` of a .tar.zst holding the same payload at the same zstd level.
#
#   tests/bench/extract_vs_tar.sh [BUILD_DIR] [RUNS]
#
# Payload (~1 GB): 2 x 200 MiB random (incompressible), 2 x 150 MiB base64
# text (compressible), 20,000 small files of 1-24 KiB (~250 MiB) in 200 dirs.
# Both archives are read once first so both come from the page cache. Each run
# extracts into a NEW ext4 filesystem (fresh_fs.sh: a loop-mounted sparse
# file made just before the run; FRESH_FS=0 uses plain directories): on these
# machines file creation is several times slower for a while after mass
# deletion, which measured the disk's history rather than the tool (runs of
# the same tool varied 1-5 s). `sync` after every run so writeback of one run
# does not land in the next. Runs alternate Parc / tar. Reported: every run's
# wall and CPU (user+sys) time, medians, and the ratio tar/Parc (>1 means Parc
# is faster). Process start-up is included for both.
set -euo pipefail
BUILD=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build-pkga}
RUNS=${2:-5}
BENCH=$BUILD/tests/bench/parc-extract-bench
WORK=${WORK:-$BUILD/bench-extract}
[ -x "$BENCH" ] || { echo "build parc-extract-bench first (cmake --build $BUILD --target parc-extract-bench)" >&2; exit 2; }
die() { echo "extract_vs_tar: $*" >&2; exit 1; }
# shellcheck source=fresh_fs.sh
source "$(dirname "$0")/fresh_fs.sh"
trap drop_all_fs EXIT

if [ "${REUSE:-0}" = 1 ] && [ -f "$WORK/bench.parc" ] && [ -f "$WORK/bench.tar.zst" ]; then
  echo "== REUSE=1: keeping the payload and archives in $WORK"
  rm -rf "$WORK/runs"; mkdir -p "$WORK/runs"
else
rm -rf "$WORK"
mkdir -p "$WORK/src/root" "$WORK/runs"
echo '{"name": "bench", "version": "1.0", "publisher": "bench"}' > "$WORK/src/package.json"

echo "== generating payload"
python3 - "$WORK/src/root" <<'PY'
import base64, os, random, sys
root = sys.argv[1]
rnd = random.Random(42)
os.makedirs(f"{root}/big", exist_ok=True)
for i in range(2):
    with open(f"{root}/big/random{i}.bin", "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1 << 20))
for i in range(2):
    with open(f"{root}/big/text{i}.txt", "wb") as f:
        for _ in range(150):
            f.write(base64.b64encode(os.urandom(786432)))  # 1 MiB of text, ~75% compressible
for d in range(200):
    os.makedirs(f"{root}/small/d{d:03}", exist_ok=True)
    for n in range(100):
        size = rnd.randint(1024, 24 * 1024)
        data = os.urandom(size // 2) + b"x" * (size - size // 2)
        with open(f"{root}/small/d{d:03}/f{n:03}.dat", "wb") as f:
            f.write(data)
PY
du -sh "$WORK/src/root"

echo "== building both archives (zstd level 3)"
"$BENCH" build "$WORK/src" "$WORK/bench.parc"
tar -C "$WORK/src/root" -cf - . | zstd -q -3 -T0 -o "$WORK/bench.tar.zst"
ls -l "$WORK/bench.parc" "$WORK/bench.tar.zst"
fi
cat "$WORK/bench.parc" "$WORK/bench.tar.zst" > /dev/null
sync
echo "== settling (sync; sleep 60)"
sleep 60

# timed OUT CMD...: runs CMD, appends "wall cpu" (seconds) to OUT.
timed() {
  local out=$1; shift
  local t0 t1 c1
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  # children's user+sys (clock ticks) of this subshell: the command just run
  times > "$out.cpu"  # (not in a pipe: that would be another process)
  c1=$(sed -n 2p "$out.cpu" | awk '{gsub(/[ms]/," "); print $1*60+$2+$3*60+$4}')
  echo "$(echo "$t1 - $t0" | bc) $c1" > "$out"
}
: > "$WORK/times"
i=1
while [ "$i" -le "$RUNS" ]; do
  fresh_fs "$WORK/runs/parc$i"
  (timed "$WORK/t.parc" "$BENCH" extract "$WORK/bench.parc" "$WORK/runs/parc$i/x"); sync
  fresh_fs "$WORK/runs/tar$i"
  mkdir "$WORK/runs/tar$i/x"
  (timed "$WORK/t.tar" tar -xf "$WORK/bench.tar.zst" -C "$WORK/runs/tar$i/x"); sync
  read -r p pc < "$WORK/t.parc"; read -r t tc < "$WORK/t.tar"
  echo "run $i: parc ${p}s (cpu ${pc}s)  tar ${t}s (cpu ${tc}s)"
  echo "$p $t $pc $tc" >> "$WORK/times"
  if [ "$i" -gt 1 ]; then drop_fs "$WORK/runs/parc$i"; drop_fs "$WORK/runs/tar$i"; fi
  i=$((i + 1))
done
# Same bytes on both sides.
diff -r "$WORK/runs/parc1/x/files" "$WORK/runs/tar1/x" > /dev/null && echo "trees identical"
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mp=$(cut -d' ' -f1 "$WORK/times" | median)
mt=$(cut -d' ' -f2 "$WORK/times" | median)
mpc=$(cut -d' ' -f3 "$WORK/times" | median)
mtc=$(cut -d' ' -f4 "$WORK/times" | median)
echo "median wall: parc ${mp}s  tar ${mt}s  ratio tar/parc $(echo "scale=2; $mt / $mp" | bc)"
echo "median cpu:  parc ${mpc}s  tar ${mtc}s (tar: tar + its zstd child)"
echo "cores: $(nproc), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
drop_all_fs
rm -rf "$WORK/runs"
sync
