#!/usr/bin/env bash
# Parc images vs casync (Debian's casync 2), same data, same chunk sizes
# (16/64/256 KiB), same run, alternating:
#
#   A  capture a debootstrap'd Debian 12 tree into a fresh store
#   B  deploy that tree from the local store into a fresh directory
#   C  capture a 2 GiB ext4 disk image (filled with real files) into a fresh store
#   D  deploy that disk image from the local store into a fresh file
#   E  one-package change: install one .deb into a copy of the tree, capture
#      again into the first store, count what a machine holding v1 must fetch
#   +  store sizes, and the chunker alone on one core
#
# Every timed command ends with `sync` (Parc syncs itself, casync does not), so
# both are timed to durable data. Deployments (B, D) write onto a fresh ext4
# per run (fresh_fs.sh; FRESH_FS=0 writes into the work dir instead). Each run writes into fresh directories;
# between series everything is deleted, synced, and the script sleeps
# $PAUSE seconds: on these machines ext4 creates files 3-5x slower for a while
# after mass deletion (DESIGN.md, "Measuring on these machines").
#
# usage: tests/bench/image_vs_casync.sh BUILD_DIR [RUNS]     (root; RUNS default 5)
#   BUILD_DIR: a Release build with parc-image-bench (ninja parc-image-bench)
#   env: PAUSE (60), WORK (a fresh /var/tmp/parc-imgbench.*), KEEP=1 keeps WORK, FRESH_FS (1),
#        PARC_REFERENCE_CACHE (/var/tmp/parc-reference), DEBIAN_MIRROR, PACKAGE (tree)
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR [RUNS]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
BUILD=$(realpath "$1")
RUNS=${2:-5}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || usage
BENCH=$BUILD/tests/bench/parc-image-bench
PAUSE=${PAUSE:-60}
CACHE=${PARC_REFERENCE_CACHE:-/var/tmp/parc-reference}
BASE=$CACHE/bookworm-base
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGE=${PACKAGE:-tree}
CHUNKS=16384:65536:262144
# The metadata Parc records, asked of casync explicitly (listing --with
# replaces casync's default set; do not add --without=all, it removes them
# all again); SHA-256 (SHA-NI) as its chunk digest, the faster of its two;
# zstd (level 3 in casync; Parc captures at level 5, CaptureOptions::zstd_level,
# spending capture CPU for ~2% fewer bytes).
FEATURES=(--with=32bit-uids --with=user-names --with=nsec-time --with=permissions --with=symlinks
          --with=device-nodes --with=fifos --with=xattrs --with=acl --with=fcaps)
CASYNC=(casync --chunk-size=$CHUNKS --digest=sha256 --compression=zstd "${FEATURES[@]}")

die() { echo "image_vs_casync: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

[[ $(id -u) -eq 0 ]] || die "run as root (device nodes, owners, chroot)"
[[ -x $BENCH ]] || die "$BENCH not found: ninja -C $BUILD parc-image-bench"
for t in casync jq mkfs.ext4 e2fsck debootstrap chroot; do
  command -v "$t" >/dev/null || die "$t not found (installer/install-deps.sh --bench)"
done

WORK=${WORK:-$(mktemp -d /var/tmp/parc-imgbench.XXXXXX)}
mkdir -p "$WORK"
# shellcheck source=fresh_fs.sh
source "$(dirname "$0")/fresh_fs.sh"
cleanup() {
  drop_all_fs
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
LOG=$WORK/log
: >"$LOG"
pause() { sync; echo "   (sync; sleep $PAUSE: ext4 recently_deleted)"; sleep "$PAUSE"; }

# timed LABEL COMMAND...: runs the command then sync, appends "LABEL seconds" to $LOG
# and keeps the command's stdout in $WORK/LABEL.out.
timed() {
  local label=$1; shift
  sync
  local t0 t1
  t0=$(now)
  "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || { cat "$WORK/$label.err" >&2; die "$label failed: $*"; }
  sync
  t1=$(now)
  echo "$label $(echo "$t1 - $t0" | bc -l)" >>"$LOG"
}
median() {  # PREFIX: median of the "PREFIX-<n> seconds" lines
  grep -E "^$1-[0-9]+ " "$LOG" | awk '{print $2}' | sort -g |
    awk '{v[NR]=$1} END {if (NR%2) printf "%.3f", v[(NR+1)/2]; else printf "%.3f", (v[NR/2]+v[NR/2+1])/2}'
}
bytes() { du -sb --apparent-size "$1" | cut -f1; }
disk() { du -sB1 "$1" | cut -f1; }
files() { find "$1" -type f | wc -l; }

step "machine"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "casync $(casync --version | awk '{print $2}'), zstd $(zstd --version | grep -o 'v[0-9.]*'), parc $BENCH"
echo "load at start: $(load)   work: $WORK ($(df -h --output=fstype,avail "$WORK" | tail -1 | xargs))"

step "reference tree"
if [[ ! -f $CACHE/bookworm-base.complete ]]; then
  mkdir -p "$CACHE"
  flock "$CACHE/.bookworm-base.lock" sh -c "cd '$CACHE' && if [ ! -f bookworm-base.complete ]; then
    rm -rf bookworm-base bookworm-base.tmp &&
    debootstrap --variant=minbase --include=linux-base,openssh-server,sudo bookworm bookworm-base.tmp '$MIRROR' >debootstrap.log 2>&1 &&
    mv bookworm-base.tmp bookworm-base && touch bookworm-base.complete; fi" || die "debootstrap failed ($CACHE/debootstrap.log)"
fi
TREE_BYTES=$(find "$BASE" -xdev -type f -printf '%i %s\n' | sort -u | awk '{s+=$2} END {print s}')  # hard links once
echo "$BASE: $(find "$BASE" -xdev | wc -l) entries, $TREE_BYTES bytes in regular files"

step "data: a 2 GiB ext4 disk image of real files, and the tree with one more package"
mkdir -p "$WORK/diskroot"
# Hard links, not copies: the files are only read, by mkfs.ext4 -d.
cp -al "$BASE" "$WORK/diskroot/bookworm"
cp -al /usr/lib/x86_64-linux-gnu "$WORK/diskroot/lib"
cp -al /usr/include "$WORK/diskroot/include"
DISK=$WORK/disk.img
mkfs.ext4 -q -F -L parcbench -d "$WORK/diskroot" "$DISK" 2G
rm -rf "$WORK/diskroot"
e2fsck -fn "$DISK" >/dev/null 2>&1 || die "the disk image does not check"
DISK_BYTES=$(stat -c %s "$DISK")
# mkfs.ext4 -d writes only the blocks it uses: the file's allocation is the data.
echo "$DISK: $DISK_BYTES bytes, $(( $(disk "$DISK") * 100 / DISK_BYTES ))% of them written by mkfs (the rest reads as zeros)"
TREE2=$WORK/tree2
cp -a "$BASE" "$TREE2"
(cd "$WORK" && apt-get download -q "$PACKAGE" >/dev/null 2>&1) || die "apt-get download $PACKAGE failed"
DEB=$(ls "$WORK"/"${PACKAGE}"_*.deb | head -1)
cp "$DEB" "$TREE2/tmp/pkg.deb"
chroot "$TREE2" dpkg -i /tmp/pkg.deb >"$WORK/dpkg.log" 2>&1 || die "dpkg -i $(basename "$DEB") failed"
rm -f "$TREE2/tmp/pkg.deb"
echo "v2 = v1 + $(basename "$DEB") ($(stat -c %s "$DEB") bytes): $(diff <(cd "$BASE" && find . | sort) <(cd "$TREE2" && find . | sort) | grep -c '^>') new paths"
pause

order() { if (( $1 % 2 )); then echo "parc casync"; else echo "casync parc"; fi; }

step "A: capture the tree ($RUNS runs each, alternating; load $(load))"
for i in $(seq 1 "$RUNS"); do
  for tool in $(order "$i"); do
    d=$WORK/A/$tool-$i
    mkdir -p "$d"
    if [[ $tool == parc ]]; then timed "A-parc-$i" "$BENCH" capture-tree "$BASE" "$d/store" "$d/img" --key "$WORK/key/bench.key"
    else timed "A-casync-$i" "${CASYNC[@]}" --store="$d/store" make "$d/img.caidx" "$BASE"; fi
  done
done
A_LOAD=$(load)
P1=$WORK/A/parc-1
C1=$WORK/A/casync-1
PARC_TREE_STORE_B=$(bytes "$P1/store/objects"); PARC_TREE_STORE_D=$(disk "$P1/store/objects"); PARC_TREE_OBJ=$(files "$P1/store/objects")
CAS_TREE_STORE_B=$(bytes "$C1/store"); CAS_TREE_STORE_D=$(disk "$C1/store"); CAS_TREE_OBJ=$(files "$C1/store")
PARC_TREE_INDEX=$(( $(jq .body_stored "$WORK/A-parc-1.out") + $(jq .manifest_bytes "$WORK/A-parc-1.out") ))
CAS_TREE_INDEX=$(stat -c %s "$C1/img.caidx")
for i in $(seq 2 "$RUNS"); do rm -rf "$WORK/A/parc-$i" "$WORK/A/casync-$i"; done
pause

step "B: deploy the tree from the local store (load $(load))"
for i in $(seq 1 "$RUNS"); do
  for tool in $(order "$i"); do
    d=$WORK/B/$tool-$i
    fresh_fs "$d"
    if [[ $tool == parc ]]; then timed "B-parc-$i" "$BENCH" deploy-tree "$P1/img" "$P1/store" "$d/target"
    else timed "B-casync-$i" "${CASYNC[@]}" --store="$C1/store" extract "$C1/img.caidx" "$d/target"; fi
  done
done
B_LOAD=$(load)
# Both results against the source, by casync's own listing (type, mode, owner,
# time, size, SHA-256 of every file), outside the timings.
casync "${FEATURES[@]}" mtree "$BASE" | sort >"$WORK/mtree.src"
for tool in parc casync; do
  casync "${FEATURES[@]}" mtree "$WORK/B/$tool-1/target" | sort >"$WORK/mtree.$tool"
  if ! cmp -s "$WORK/mtree.src" "$WORK/mtree.$tool"; then
    diff "$WORK/mtree.src" "$WORK/mtree.$tool" >"$WORK/mtree.$tool.diff" || true
    head -5 "$WORK/mtree.$tool.diff"
    die "the tree deployed by $tool differs from the source (see $WORK/mtree.$tool.diff)"
  fi
done
echo "both deployed trees equal the source (casync mtree)"
for i in $(seq 1 "$RUNS"); do drop_fs "$WORK/B/parc-$i"; drop_fs "$WORK/B/casync-$i"; done
rm -rf "$WORK/B"
pause

step "C: capture the disk image (load $(load))"
for i in $(seq 1 "$RUNS"); do
  for tool in $(order "$i"); do
    d=$WORK/C/$tool-$i
    mkdir -p "$d"
    if [[ $tool == parc ]]; then timed "C-parc-$i" "$BENCH" capture-block "$DISK" "$d/store" "$d/img" --key "$WORK/key/bench.key"
    else timed "C-casync-$i" "${CASYNC[@]}" --store="$d/store" make "$d/img.caibx" "$DISK"; fi
  done
done
C_LOAD=$(load)
PD=$WORK/C/parc-1
CD=$WORK/C/casync-1
PARC_DISK_STORE_B=$(bytes "$PD/store/objects"); PARC_DISK_STORE_D=$(disk "$PD/store/objects"); PARC_DISK_OBJ=$(files "$PD/store/objects")
CAS_DISK_STORE_B=$(bytes "$CD/store"); CAS_DISK_STORE_D=$(disk "$CD/store"); CAS_DISK_OBJ=$(files "$CD/store")
PARC_DISK_INDEX=$(( $(jq .body_stored "$WORK/C-parc-1.out") + $(jq .manifest_bytes "$WORK/C-parc-1.out") ))
CAS_DISK_INDEX=$(stat -c %s "$CD/img.caibx")
for i in $(seq 2 "$RUNS"); do rm -rf "$WORK/C/parc-$i" "$WORK/C/casync-$i"; done
pause

step "D: deploy the disk image from the local store into a new file (load $(load))"
for i in $(seq 1 "$RUNS"); do
  for tool in $(order "$i"); do
    d=$WORK/D/$tool-$i
    fresh_fs "$d"
    if [[ $tool == parc ]]; then timed "D-parc-$i" "$BENCH" deploy-block "$PD/img" "$PD/store" "$d/disk.img"
    else timed "D-casync-$i" "${CASYNC[@]}" --store="$CD/store" extract "$CD/img.caibx" "$d/disk.img"; fi
  done
  for tool in parc casync; do
    cmp -s "$DISK" "$WORK/D/$tool-$i/disk.img" || die "the disk image deployed by $tool differs"
    rm -f "$WORK/D/$tool-$i/disk.img"
    drop_fs "$WORK/D/$tool-$i"
  done
done
D_LOAD=$(load)
rm -rf "$WORK/D"
pause

step "E: one-package change ($(basename "$DEB")), captured into the v1 stores (load $(load))"
find "$C1/store" -type f -printf '%P %s\n' | sort >"$WORK/cas.before"
timed "E-parc-1" "$BENCH" capture-tree "$TREE2" "$P1/store" "$WORK/E-v2" --reuse "$P1/img" --key "$WORK/key/bench.key"
timed "E-casync-1" "${CASYNC[@]}" --store="$C1/store" make "$WORK/E-v2.caidx" "$TREE2"
find "$C1/store" -type f -printf '%P %s\n' | sort >"$WORK/cas.after"
CAS_NEW=$(comm -13 "$WORK/cas.before" "$WORK/cas.after" | awk '{n++; s+=$2} END {printf "%d %d", n, s}')
CAS_NEW_N=${CAS_NEW% *}; CAS_NEW_B=${CAS_NEW#* }
CAS_V2_INDEX=$(stat -c %s "$WORK/E-v2.caidx")
"$BENCH" diff "$P1/img" "$WORK/E-v2" "$P1/store" >"$WORK/E-diff.out"
PARC_ALL_N=$(jq .chunks_to_transfer "$WORK/E-diff.out"); PARC_ALL_B=$(jq .bytes_to_transfer "$WORK/E-diff.out")
PARC_IDX_N=$(jq .index_chunks_to_transfer "$WORK/E-diff.out"); PARC_IDX_B=$(jq .index_bytes_to_transfer "$WORK/E-diff.out")
PARC_MAN_B=$(jq .manifest_bytes "$WORK/E-diff.out")
PARC_NEW_N=$((PARC_ALL_N - PARC_IDX_N)); PARC_NEW_B=$((PARC_ALL_B - PARC_IDX_B))
echo "parc: $(jq -c '{added, removed, changed}' "$WORK/E-diff.out") paths; v2 captured in $(grep '^E-parc-1 ' "$LOG" | awk '{printf "%.2f", $2}') s"

step "chunker alone (one core, CPU time; load $(load))"
"$BENCH" chunker --mb 512 "$DISK" | tee "$WORK/chunker.out"

ratio() { echo "scale=2; $1 / $2" | bc -l; }
mbps() { echo "scale=1; $1 / $2 / 1000000" | bc -l; }
row() {  # SERIES BYTES WHAT LOAD
  local p c
  p=$(median "$1-parc"); c=$(median "$1-casync")
  printf '%-34s %8.2f s %7s MB/s | %8.2f s %7s MB/s | %5sx   load %s\n' "$3" "$p" "$(mbps "$2" "$p")" "$c" "$(mbps "$2" "$c")" "$(ratio "$c" "$p")" "$4"
}

step "results: medians of $RUNS alternating runs, each ending with sync"
printf '%-34s %-25s | %-25s | %s\n' "" "Parc" "casync" "casync time / Parc time"
row A "$TREE_BYTES" "A tree capture" "$A_LOAD"
row B "$TREE_BYTES" "B tree deploy (local store)" "$B_LOAD"
row C "$DISK_BYTES" "C disk image capture (2 GiB)" "$C_LOAD"
row D "$DISK_BYTES" "D disk image deploy (local store)" "$D_LOAD"
echo "   (MB/s = tree file bytes $TREE_BYTES or image bytes $DISK_BYTES per second; Parc's deploy-block includes its read-back verification from the device)"
echo
printf '%-34s %-44s | %s\n' "store (content chunks)" "Parc" "casync"
printf '%-34s %12s B apparent %12s B on disk %6s objects | %12s B apparent %12s B on disk %6s objects\n' \
  "tree" "$PARC_TREE_STORE_B" "$PARC_TREE_STORE_D" "$PARC_TREE_OBJ" "$CAS_TREE_STORE_B" "$CAS_TREE_STORE_D" "$CAS_TREE_OBJ"
printf '%-34s %12s B apparent %12s B on disk %6s objects | %12s B apparent %12s B on disk %6s objects\n' \
  "disk image" "$PARC_DISK_STORE_B" "$PARC_DISK_STORE_D" "$PARC_DISK_OBJ" "$CAS_DISK_STORE_B" "$CAS_DISK_STORE_D" "$CAS_DISK_OBJ"
printf '%-34s tree %s B, disk %s B (manifest + stored body, body included in the store above) | caidx %s B, caibx %s B\n' \
  "index" "$PARC_TREE_INDEX" "$PARC_DISK_INDEX" "$CAS_TREE_INDEX" "$CAS_DISK_INDEX"
echo
echo "E one-package change: what a machine holding v1 fetches for v2"
printf '   %-31s %6s chunks %10s B\n' "Parc content chunks" "$PARC_NEW_N" "$PARC_NEW_B"
printf '   %-31s %6s chunks %10s B\n' "casync chunks" "$CAS_NEW_N" "$CAS_NEW_B"
printf '   %-31s %s\n' "ratio (casync / Parc bytes)" "$(ratio "$CAS_NEW_B" "$PARC_NEW_B")"
printf '   %-31s Parc %s B (content %s + changed index chunks %s (%s) + manifest %s) | casync %s B (chunks %s + whole caidx %s)\n' \
  "with the index" "$((PARC_ALL_B + PARC_MAN_B))" "$PARC_NEW_B" "$PARC_IDX_B" "$PARC_IDX_N" "$PARC_MAN_B" \
  "$((CAS_NEW_B + CAS_V2_INDEX))" "$CAS_NEW_B" "$CAS_V2_INDEX"
echo
echo "load at end: $(load)"
echo "raw timings: $(tr '\n' ' ' <"$LOG")"
