#!/bin/sh
# Extraction speed: Parc (verify + ExtractPayload, as the agent does) against
# GNU `tar -xf` of a .tar.zst holding the same payload at the same zstd level.
#
#   tests/bench/extract_vs_tar.sh [BUILD_DIR] [RUNS]
#
# Payload (~1 GB): 2 x 200 MiB random (incompressible), 2 x 150 MiB base64
# text (compressible), 20,000 small files of 1-24 KiB (~250 MiB) in 200 dirs.
# Both archives are read once first so both come from the page cache. Each run
# extracts into a fresh directory; nothing is deleted during a series (ext4
# without journal + discard makes file creation 3-5x slower for a minute
# after deletions); `sync` after every run so writeback of one run does not
# land in the next. Runs alternate Parc / tar. Reported: every time, medians,
# and the ratio tar/Parc (>1 means Parc is faster). Process start-up is
# included for both.
set -eu
BUILD=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build-pkga}
RUNS=${2:-5}
BENCH=$BUILD/tests/bench/parc-extract-bench
WORK=${WORK:-$BUILD/bench-extract}
[ -x "$BENCH" ] || { echo "build parc-extract-bench first (cmake --build $BUILD --target parc-extract-bench)" >&2; exit 2; }

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

now() { date +%s.%N; }
: > "$WORK/times"
i=1
while [ "$i" -le "$RUNS" ]; do
  t0=$(now); "$BENCH" extract "$WORK/bench.parc" "$WORK/runs/parc$i"; t1=$(now); sync
  mkdir "$WORK/runs/tar$i"
  t2=$(now); tar -xf "$WORK/bench.tar.zst" -C "$WORK/runs/tar$i"; t3=$(now); sync
  p=$(echo "$t1 - $t0" | bc); t=$(echo "$t3 - $t2" | bc)
  echo "run $i: parc ${p}s  tar ${t}s"
  echo "$p $t" >> "$WORK/times"
  i=$((i + 1))
done
# Same bytes on both sides.
diff -r "$WORK/runs/parc1/files" "$WORK/runs/tar1" > /dev/null && echo "trees identical"
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mp=$(cut -d' ' -f1 "$WORK/times" | median)
mt=$(cut -d' ' -f2 "$WORK/times" | median)
echo "median: parc ${mp}s  tar ${mt}s  ratio tar/parc $(echo "scale=2; $mt / $mp" | bc)"
echo "cores: $(nproc), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK/runs"
sync
