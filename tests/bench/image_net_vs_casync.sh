#!/usr/bin/env bash
# Image deployment over the network from a server: Parc (parc-server ->
# parc-agent, gRPC over mutual TLS) against casync (Debian's casync 2,
# `casync extract` from a remote store served by nginx), same data, same
# chunk sizes (16/64/256 KiB), same run, alternating, everything on 127.0.0.1:
#
#   T  deploy a debootstrap'd Debian 12 tree into a fresh directory
#   D  deploy a 2 GiB ext4 disk image (filled with real files) into a fresh file
#
# Parc: the images are captured (parcctl image capture --push, outside the
# timings) and registered on a real parc-server (--state-dir in the work dir,
# --listen 127.0.0.1:0). Each run enrolls and starts a FRESH agent (its own
# --root and --state-dir, so its chunk cache <state>/images/chunks is empty and
# nothing can be seeded from the target), then times
#   parcctl --json image deploy NAME=1 --to host:H --target /srv/... --watch
# from its start until the deployment is finished (the watch stream ends), then
# `sync`. That includes the server scheduling the job, the agent verifying the
# signature, fetching every chunk over GetContent (TLS; every chunk verified
# and written to the agent's cache before the target is written), writing,
# syncfs/fsync, the swap, and Parc's own check of the result (a tree is compared
# with the image by VerifyTree before commit; a block target is read back and
# checked chunk by chunk). Bytes: the job's `fetched_bytes` (chunk and index
# bytes received by the agent; TLS/gRPC framing not counted).
#
# casync: the same tree and disk image made into casync stores with
# --chunk-size=16384:65536:262144 --digest=sha256 --compression=zstd and the
# metadata Parc records (the flags of tests/bench/image_vs_casync.sh), served by
# nginx from a temp config on a free 127.0.0.1 port. Each run times
#   casync --store=URL/X.castr extract URL/X.caidx|caibx FRESH_TARGET
# then `sync` (casync does not sync itself). casync passes its chunk requests to
# its protocol helper as symlinks in a queue directory under $TMPDIR (default
# /var/tmp, here the same ext4 as everything else), one symlink created and
# removed per chunk; on these machines' ext4 that costs casync a lot, so each
# run is also made with TMPDIR=/dev/shm (tmpfs), reported as "casync/tmpfs",
# rotating the three. casync has no local chunk cache for
# a remote store, and a fresh target gives it nothing to seed from. casync does
# not verify the written result afterwards. Bytes: the sum of nginx's
# $body_bytes_sent over the run's requests (index + chunks; headers and TLS
# not counted).
#
# TLS: nginx serves HTTPS (self-signed P-256 certificate for IP 127.0.0.1,
# the curve Parc uses; TLS 1.2 and 1.3 offered, the protocol and cipher
# negotiated are printed). casync's helper (casync-https, libcurl-gnutls) ignores
# SSL_CERT_FILE / CURL_CA_BUNDLE, so each casync run is started in a PRIVATE
# mount namespace (unshare -m) in which a bundle holding the system CAs plus
# that certificate is bind-mounted over /etc/ssl/certs/ca-certificates.crt;
# the file on disk and every other process are untouched. If that is not
# possible here, casync falls back to plain HTTP, and the script says so in
# its output: casync then has the advantage of no TLS. CASYNC_TLS=http forces
# plain HTTP, CASYNC_TLS=https forbids the fallback.
#
# Fresh filesystems (FRESH_FS=1, the default): each timed run writes onto a
# NEW ext4 filesystem (an 8 GiB sparse file on a loop device, made with mkfs
# and mounted just before the run, unmounted and dropped after its check): the
# Parc agent's root, state dir and chunk cache, or casync's target and request
# queue ($TMPDIR). Both tools then create files as on a machine's own disk,
# not on an ext4 that is slow after mass deletion (inode allocation scanning
# recently deleted inodes, DESIGN.md, "Measuring on these machines"), which
# otherwise dominates both Parc's cache writes and casync's queue. FRESH_FS=0
# writes into the work dir as before.
#
# Each run also records CPU seconds: the machine's busy time (both cores,
# kernel threads included), the tool's sides (parc-agent, parc-server,
# parcctl | casync with its helper, nginx workers), and the rest, which shows
# whether something else ran on the machine during that run.
#
# Outside the timings, every run's result is compared with the source: trees
# by casync's own listing (casync mtree: type, mode, owner, time, size, SHA-256
# of every file), disk images with cmp. Any failed step or difference ends the
# script with a non-zero exit and a message.
#
# Each run writes into fresh directories; between series everything is
# deleted, synced, and the script sleeps $PAUSE seconds: on these machines
# ext4 creates files 3-5x slower for a while after mass deletion (DESIGN.md,
# "Measuring on these machines"). Medians of RUNS alternating runs, and the
# ratio casync time / Parc time (> 1: Parc is faster).
#
# usage: tests/bench/image_net_vs_casync.sh BUILD_DIR [RUNS]     (root; RUNS default 3)
#   BUILD_DIR: holds server/parc-server, agent/parc-agent, ctl/parcctl
#   env: PAUSE (60), WORK (a fresh /var/tmp/parc-imgnet.*), KEEP=1 keeps WORK,
#        PARC_REFERENCE_CACHE (/var/tmp/parc-reference), DEBIAN_MIRROR,
#        CASYNC_TLS (auto|https|http), DEPLOY_TIMEOUT (seconds per run, 1800),
#        SERIES (T, D or TD: which series to run; default TD)
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR [RUNS]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
BUILD=$(realpath "$1")
RUNS=${2:-3}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || usage
SERVER=$BUILD/server/parc-server
AGENT=$BUILD/agent/parc-agent
CTL=$BUILD/ctl/parcctl
PAUSE=${PAUSE:-60}
CACHE=${PARC_REFERENCE_CACHE:-/var/tmp/parc-reference}
BASE=$CACHE/bookworm-base
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CASYNC_TLS=${CASYNC_TLS:-auto}
DEPLOY_TIMEOUT=${DEPLOY_TIMEOUT:-1800}
CHUNKS=16384:65536:262144
PARC_CHUNKING='{"algorithm":"parc-gear/1","avg":65536,"max":262144,"min":16384}'
# The metadata Parc records, asked of casync explicitly (as in image_vs_casync.sh);
# SHA-256 as casync's chunk digest; zstd (level 3 in casync; Parc captures at level 5,
# CaptureOptions::zstd_level, spending capture CPU for ~2% fewer bytes).
FEATURES=(--with=32bit-uids --with=user-names --with=nsec-time --with=permissions --with=symlinks
          --with=device-nodes --with=fifos --with=xattrs --with=acl --with=fcaps)
CASYNC=(casync --chunk-size=$CHUNKS --digest=sha256 --compression=zstd "${FEATURES[@]}")
SYSTEM_CA=/etc/ssl/certs/ca-certificates.crt

die() { echo "image_net_vs_casync: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

[[ $(id -u) -eq 0 ]] || die "run as root (device nodes, owners, mount namespace)"
for b in "$SERVER" "$AGENT" "$CTL"; do [[ -x $b ]] || die "$b not found or not executable"; done
for t in casync jq mkfs.ext4 e2fsck debootstrap nginx openssl unshare mount python3 bc cmp; do
  command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || die "$t not found"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ $CASYNC_TLS =~ ^(auto|https|http)$ ]] || die "CASYNC_TLS must be auto, https or http"

WORK=${WORK:-$(mktemp -d /var/tmp/parc-imgnet.XXXXXX)}
mkdir -p "$WORK"
chmod 711 "$WORK"  # nginx workers (an unprivileged user) traverse it to the served files
pids=()
# shellcheck source=fresh_fs.sh
source "$(dirname "$0")/fresh_fs.sh"
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  drop_all_fs
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
LOG=$WORK/log
: >"$LOG"
: >"$WORK/starts"
: >"$WORK/cpu"
pause() { sync; echo "   (sync; sleep $PAUSE: ext4 recently_deleted)"; sleep "$PAUSE"; }
# SERIES=T or SERIES=D runs one series only (default both).
SERIES=${SERIES:-TD}
[[ $SERIES =~ ^(T|D|TD)$ ]] || die "SERIES must be T, D or TD"
SERIES_LIST=$(echo "$SERIES" | sed 's/./& /g')

# CPU accounting, to see what else used the two cores during a run:
# busy_ticks: the machine's busy time (all cores, kernel threads included);
# proc_ticks PIDS: user+system time of these live processes; children_secs:
# user+system time of every child this shell has waited for (bash `times`).
TICK=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }  # user nice system irq softirq
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }  # taken by the hypervisor for other guests
proc_ticks() {
  local p s t=0 f
  for p in "$@"; do
    [[ -r /proc/$p/stat ]] || continue
    s=$(<"/proc/$p/stat"); s=${s##*) }
    read -ra f <<<"$s"
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
children_secs() {  # FILE written by `times` (a builtin, run in this shell: a subshell would not see its children)
  awk 'NR == 2 {s = 0; for (i = 1; i <= 2; i++) {split($i, a, /[ms]/); s += a[1] * 60 + a[2]} printf "%.2f", s}' "$1"
}
SIDE_PIDS=()  # processes of the tool's other side (set by the series), measured during each run

# timed LABEL COMMAND...: runs the command then sync, appends "LABEL seconds" to $LOG
# (and "LABEL start" to $WORK/starts), "LABEL busy side children" CPU seconds to
# $WORK/cpu (and steal), and keeps its stdout in $WORK/LABEL.out.
timed() {
  local label=$1; shift
  sync
  local t0 t1 b0 b1 s0 s1 c0 c1 st0 st1
  b0=$(busy_ticks); st0=$(steal_ticks); s0=$(proc_ticks "${SIDE_PIDS[@]}"); times >"$WORK/times.0"
  t0=$(now)
  echo "$label $t0" >>"$WORK/starts"
  "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || { tail -20 "$WORK/$label.err" >&2; die "$label failed: $*"; }
  sync
  t1=$(now)
  times >"$WORK/times.1"; b1=$(busy_ticks); st1=$(steal_ticks); s1=$(proc_ticks "${SIDE_PIDS[@]}")
  c0=$(children_secs "$WORK/times.0"); c1=$(children_secs "$WORK/times.1")
  echo "$label $(echo "$t1 - $t0" | bc -l)" >>"$LOG"
  echo "$label $(echo "($b1 - $b0) / $TICK" | bc -l) $(echo "($s1 - $s0) / $TICK" | bc -l) $(echo "$c1 - $c0" | bc -l) $(echo "($st1 - $st0) / $TICK" | bc -l)" >>"$WORK/cpu"
}
median() {  # PREFIX: median of the "PREFIX-<n> seconds" lines
  grep -E "^$1-[0-9]+ " "$LOG" | awk '{print $2}' | sort -g |
    awk '{v[NR]=$1} END {if (NR%2) printf "%.3f", v[(NR+1)/2]; else printf "%.3f", (v[NR/2]+v[NR/2+1])/2}'
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
bytes() { du -sb --apparent-size "$1" | cut -f1; }

step "machine"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "casync $(casync --version | awk '{print $2}') (libcurl $(dpkg-query -W -f='${Version}' libcurl3-gnutls 2>/dev/null || echo '?')), $($NGINX -v 2>&1 | sed 's/.*: //'), parc binaries from $BUILD"
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

step "data: a 2 GiB ext4 disk image of real files"
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
echo "$DISK: $DISK_BYTES bytes, $(( $(du -sB1 "$DISK" | cut -f1) * 100 / DISK_BYTES ))% of them written by mkfs (the rest reads as zeros)"
# The source listing the deployed trees are compared with (outside the timings).
casync "${FEATURES[@]}" mtree "$BASE" | sort >"$WORK/mtree.src"

step "parc: server, publisher key, images captured and pushed (not timed)"
mkdir -p "$WORK/server"
"$SERVER" --state-dir "$WORK/server" --listen 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
pids+=("$SERVER_PID")
for ((i = 0; i < 100; i++)); do [[ -s $WORK/server/server.addr ]] && break; sleep 0.1; done
ADDR=$(head -1 "$WORK/server/server.addr" 2>/dev/null || true)
[[ -n $ADDR ]] || { tail "$WORK/server.log" >&2; die "parc-server did not start"; }
ctl() { "$CTL" --credentials "$WORK/server/admin.pem" --server "$ADDR" "$@"; }
echo "parc-server on $ADDR"
"$CTL" key create --name bench --dir "$WORK/keys" >/dev/null || die "parcctl key create failed"
ctl key add "$WORK/keys/bench.pub" --name bench >/dev/null || die "parcctl key add failed"
ctl group create bench >/dev/null || die "parcctl group create failed"
PSTORE=$WORK/parc-store
capture() {  # NAME FROM
  ctl --json image capture --from "$2" --name "$1" --version 1 --key "$WORK/keys/bench.key" -o "$PSTORE" --push \
    >"$WORK/capture-$1.json" 2>"$WORK/capture-$1.err" || { tail "$WORK/capture-$1.err" >&2; die "parcctl image capture $1 failed"; }
  local c
  c=$(jq -cS .chunking "$PSTORE/images/$1_1.manifest.json")
  [[ $c == "$PARC_CHUNKING" ]] || die "image $1 was chunked with $c, not $PARC_CHUNKING like casync"
  echo "$1: $(jq -r '"\(.kind), \(.size) bytes, \(.chunks) distinct chunks, \(.stored_size) bytes stored; pushed \(.pushed.uploaded) objects"' "$WORK/capture-$1.json")"
}
capture bench-tree "$BASE"
capture bench-disk "$DISK"
ctl --json image list >"$WORK/image-list.json" || die "parcctl image list failed"
[[ $(jq '[.images[] | select(.name == "bench-tree" or .name == "bench-disk")] | length' "$WORK/image-list.json") == 2 ]] ||
  die "the server does not list both images: $(cat "$WORK/image-list.json")"

step "casync: stores made from the same data, served by nginx (not timed)"
NG=$WORK/nginx
HTML=$NG/html
mkdir -p "$HTML" "$NG/tmp"
"${CASYNC[@]}" --store="$HTML/tree.castr" make "$HTML/tree.caidx" "$BASE" >/dev/null || die "casync make (tree) failed"
"${CASYNC[@]}" --store="$HTML/disk.castr" make "$HTML/disk.caibx" "$DISK" >/dev/null || die "casync make (disk) failed"
echo "tree: caidx $(stat -c %s "$HTML/tree.caidx") bytes, store $(bytes "$HTML/tree.castr") bytes in $(find "$HTML/tree.castr" -type f | wc -l) chunks"
echo "disk: caibx $(stat -c %s "$HTML/disk.caibx") bytes, store $(bytes "$HTML/disk.castr") bytes in $(find "$HTML/disk.castr" -type f | wc -l) chunks"
# A tiny store for the TLS probe.
mkdir -p "$NG/probe-src" && echo probe >"$NG/probe-src/file"
casync --store="$HTML/probe.castr" make "$HTML/probe.caidx" "$NG/probe-src" >/dev/null || die "casync make (probe) failed"
chmod -R go+rX "$HTML"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$NG/key.pem" -out "$NG/cert.pem" 2>/dev/null || die "openssl req failed"
cat "$SYSTEM_CA" "$NG/cert.pem" >"$NG/ca-bundle.pem" 2>/dev/null || cp "$NG/cert.pem" "$NG/ca-bundle.pem"
HTTPS_PORT=$(free_port)
HTTP_PORT=$(free_port)
cat >"$NG/nginx.conf" <<CONF
worker_processes auto;
error_log $NG/error.log;
events { worker_connections 1024; }
http {
  log_format bench '\$status \$body_bytes_sent \$bytes_sent \$connection \$ssl_protocol/\$ssl_cipher \$request_uri';
  access_log $NG/access.log bench;
  client_body_temp_path $NG/tmp/body;
  proxy_temp_path $NG/tmp/proxy;
  fastcgi_temp_path $NG/tmp/fastcgi;
  uwsgi_temp_path $NG/tmp/uwsgi;
  scgi_temp_path $NG/tmp/scgi;
  sendfile on;
  keepalive_requests 1000000;
  types { application/octet-stream caidx caibx cacnk; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$HTTPS_PORT ssl;
    ssl_certificate $NG/cert.pem;
    ssl_certificate_key $NG/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $HTML;
  }
  server {
    listen 127.0.0.1:$HTTP_PORT;
    root $HTML;
  }
}
CONF
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -g "daemon off; pid $NG/nginx.pid;" >"$NG/stdout.log" 2>&1 &
NGINX_PID=$!
pids+=("$NGINX_PID")
for ((i = 0; i < 50; i++)); do
  curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/probe.caidx" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/probe.caidx" || { cat "$NG/error.log" "$NG/stdout.log" >&2; die "nginx did not start"; }
mapfile -t NGINX_WORKERS < <(pgrep -P "$NGINX_PID")
((${#NGINX_WORKERS[@]})) || die "no nginx worker process"

# casync over HTTPS: see the header (private mount namespace, bind-mounted CA bundle).
casync_https() {  # casync arguments...
  unshare -m -- sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh "$NG/ca-bundle.pem" "$SYSTEM_CA" "$@"
}
casync_plain() { "$@"; }
if [[ $CASYNC_TLS != http ]] &&
   casync_https casync --store="https://127.0.0.1:$HTTPS_PORT/probe.castr" extract \
     "https://127.0.0.1:$HTTPS_PORT/probe.caidx" "$NG/probe-out" >"$NG/probe.log" 2>&1 &&
   cmp -s "$NG/probe-src/file" "$NG/probe-out/file"; then
  SCHEME=https PORT=$HTTPS_PORT RUNNER=casync_https
  CASYNC_TRANSPORT="HTTPS (TLS, P-256 certificate, trusted through a bind mount in a private mount namespace)"
else
  [[ $CASYNC_TLS == https ]] && { cat "$NG/probe.log" >&2; die "casync over HTTPS does not work here (CASYNC_TLS=https)"; }
  SCHEME=http PORT=$HTTP_PORT RUNNER=casync_plain
  CASYNC_TRANSPORT="plain HTTP, NO TLS ($([[ $CASYNC_TLS == http ]] && echo "CASYNC_TLS=http" || echo "HTTPS probe failed: $(tail -1 "$NG/probe.log")")): casync has the advantage of no encryption"
fi
URL=$SCHEME://127.0.0.1:$PORT
echo "casync transport: $CASYNC_TRANSPORT; $URL"

casync_net() {  # INDEX STORE TARGET: extract from nginx (request queue in $CASYNC_TMP)
  TMPDIR=$CASYNC_TMP "$RUNNER" "${CASYNC[@]}" --store="$URL/$2" extract "$URL/$1" "$3"
}
# casync keeps its queue of chunk requests to the protocol helper as symlinks
# in a directory under $TMPDIR (default /var/tmp): one created and removed per
# chunk. On these machines' ext4 that is slow (see the header), so casync is
# also run with that directory on tmpfs (/dev/shm), as a second casync column.
CASYNC_QUEUE_DISK=${TMPDIR:-/var/tmp}
CASYNC_QUEUE_SHM=/dev/shm
CASYNC_SHM_TOOL=()
if [[ $(stat -f -c %T "$CASYNC_QUEUE_SHM" 2>/dev/null) == tmpfs ]]; then CASYNC_SHM_TOOL=(casyncshm)
else echo "no tmpfs at $CASYNC_QUEUE_SHM: casync runs only with its queue in $CASYNC_QUEUE_DISK"; fi
QUEUE_LABEL=$CASYNC_QUEUE_DISK
[[ $FRESH_FS == 1 ]] && QUEUE_LABEL="fresh ext4"
echo "casync request queue: $([[ $FRESH_FS == 1 ]] && echo "TARGET_FS/tmp, on the run's fresh ext4" || echo "$CASYNC_QUEUE_DISK ($(stat -f -c %T "$CASYNC_QUEUE_DISK"))") and, as 'casync/tmpfs', $CASYNC_QUEUE_SHM"
echo "fresh filesystem per run: $([[ $FRESH_FS == 1 ]] && echo "yes (8 GiB ext4 on a loop device: agent root/state/cache, casync target/queue)" || echo "no (FRESH_FS=0)")"
# What nginx served since line $1 of its log: "bytes requests connections status-other-than-200 tls".
served_since() {
  tail -n +"$(($1 + 1))" "$NG/access.log" |
    awk '{b += $2; n++; c[$4] = 1; if ($1 != 200) bad++; t = $5} END {printf "%d %d %d %d %s\n", b, n, length(c), bad, t}'
}
log_lines() { wc -l <"$NG/access.log"; }

# A fresh agent: its own root and state dir (empty chunk cache), enrolled into group bench, running.
AGENT_PID=
start_agent() {  # NAME
  local a=$WORK/agents/$1 r s tok_json tok fp online=0
  fresh_fs "$a"
  r=$a/root s=$a/state
  mkdir -p "$r/etc" "$r/var/lib/dpkg" "$r/srv" "$s"
  echo "$1" >"$r/etc/hostname"
  : >"$r/var/lib/dpkg/status"
  echo "root:x:0:0:root:/root:/bin/bash" >"$r/etc/passwd"
  echo "root:x:0:" >"$r/etc/group"
  tok_json=$(ctl --json token create --group bench) || die "token create failed"
  tok=$(jq -r '.token // .secret // empty' <<<"$tok_json")
  fp=$(jq -r '.ca_fingerprint // .fingerprint // empty' <<<"$tok_json")
  [[ -n $tok && -n $fp ]] || die "unexpected token JSON: $tok_json"
  "$AGENT" --state-dir "$s" --root "$r" enroll --server "$ADDR" --token "$tok" --ca-fingerprint "$fp" \
    >"$a/enroll.log" 2>&1 || { cat "$a/enroll.log" >&2; die "enrolling agent $1 failed"; }
  "$AGENT" --state-dir "$s" --root "$r" run >"$a/run.log" 2>&1 &
  AGENT_PID=$!
  pids+=("$AGENT_PID")
  for ((k = 0; k < 200; k++)); do
    online=$(ctl --json hosts --group bench --online | jq --arg h "$1" '[.hosts[] | select(.hostname == $h)] | length')
    [[ $online -ge 1 && -s $s/trusted_keys.json ]] && break
    sleep 0.1
  done
  [[ $online -ge 1 ]] || { tail "$a/run.log" >&2; die "agent $1 did not come online"; }
  [[ -s $s/trusted_keys.json ]] || die "agent $1 did not receive the publisher keys"
  [[ ! -e $s/images/chunks ]] || die "agent $1 already has a chunk cache"
  sleep 1  # let the agent's start-up (inventory upload) finish before timing
}
stop_agent() { kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; }

# Deploys IMAGE to HOST:TARGET and follows it to the end, one timestamped JSON document per update.
parc_deploy() {  # IMAGE HOST TARGET
  timeout "$DEPLOY_TIMEOUT" "$CTL" --credentials "$WORK/server/admin.pem" --server "$ADDR" --json \
    image deploy "$1" --to "host:$2" --target "$3" --watch |
    while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}
# After a Parc run: checks the final state and prints "fetched_bytes fetched chunks from_cache seeded".
parc_result() {  # LABEL
  local last
  last=$(tail -1 "$WORK/$1.out" | cut -d' ' -f2-)
  [[ -n $last ]] || die "$1: the deployment watch printed nothing"
  local state job
  state=$(jq -r '.state' <<<"$last")
  job=$(jq -r '.jobs[0].state' <<<"$last")
  [[ $state == completed && $job == succeeded && $(jq '.jobs | length' <<<"$last") == 1 ]] ||
    die "$1: deployment $state, job $job: $(jq -r '.jobs[0].message' <<<"$last")"
  jq -r '.jobs[0].output | fromjson | "\(.fetched_bytes) \(.fetched) \(.index_fetched) \(.from_cache) \(.seeded) \(.chunks)"' <<<"$last"
}
# The job's phases as the server saw them (its progress updates, from the watch stream):
# "phase seconds" from the first update of a phase to the first of the next, plus the
# time from the command's start to the first update and to the end of the stream.
parc_phases() {  # LABEL
  local t0
  t0=$(awk -v l="$1" '$1 == l {print $2}' "$WORK/starts")
  paste -d' ' <(cut -d' ' -f1 "$WORK/$1.out") \
              <(cut -d' ' -f2- "$WORK/$1.out" | jq -r '(.jobs[0].state) + "/" + ((.jobs[0].message // "") | split(" ")[0])') |
    awk -v t0="$t0" '
      { if ($2 != cur) { if (cur != "") printf "%s %.2f, ", cur, $1 - since; else printf "(first update %.2f) ", $1 - t0; cur = $2; since = $1 } last = $1 }
      END { printf "%s; stream ended at %.2f s\n", cur, last - t0 }'
}

# Run i starts with a different tool each time (rotation of the three).
order() {
  local t=(parc casync "${CASYNC_SHM_TOOL[@]}") k n
  n=${#t[@]}
  for ((k = 0; k < n; k++)); do echo -n "${t[(($1 - 1 + k) % n)]} "; done
}
declare -A BYTES REQS CONNS PHASES AGENT_CPU
TLS_SEEN=

# series SERIES IMAGE TARGET-IN-ROOT CASYNC-INDEX CASYNC-STORE CHECK-FUNCTION
series() {
  local S=$1 image=$2 target=$3 index=$4 store=$5 check=$6 i tool d before res b n c bad
  for i in $(seq 1 "$RUNS"); do
    for tool in $(order "$i"); do
      if [[ $tool == parc ]]; then
        start_agent "bench-$S$i"
        echo "   run $i parc: agent bench-$S$i (load $(load))"
        SIDE_PIDS=("$SERVER_PID" "$AGENT_PID")
        AGENT_T0=$(proc_ticks "$AGENT_PID")
        timed "$S-parc-$i" parc_deploy "$image" "bench-$S$i" "$target"
        AGENT_CPU[$S-parc-$i]=$(echo "($(proc_ticks "$AGENT_PID") - $AGENT_T0) / $TICK" | bc -l)
        stop_agent
        res=$(parc_result "$S-parc-$i")
        BYTES[$S-parc-$i]=${res%% *}
        PHASES[$S-parc-$i]=$(parc_phases "$S-parc-$i")
        "$check" "$WORK/agents/bench-$S$i/root$target" "Parc run $i"
        mkdir -p "$WORK/logs"
        cp "$WORK/agents/bench-$S$i/run.log" "$WORK/logs/bench-$S$i.log"
        drop_fs "$WORK/agents/bench-$S$i"
      else
        d=$WORK/$S/$tool-$i
        fresh_fs "$d"
        if [[ $tool == casync ]]; then CASYNC_TMP=$CASYNC_QUEUE_DISK; else CASYNC_TMP=$CASYNC_QUEUE_SHM; fi
        if [[ $tool == casync && $FRESH_FS == 1 ]]; then CASYNC_TMP=$d/tmp; mkdir -p "$CASYNC_TMP"; chmod 1777 "$CASYNC_TMP"; fi
        echo "   run $i $tool, request queue in $CASYNC_TMP (load $(load))"
        before=$(log_lines)
        SIDE_PIDS=("${NGINX_WORKERS[@]}")
        timed "$S-$tool-$i" casync_net "$index" "$store" "$d/target"
        sleep 0.2  # nginx logs a request when it has sent it
        res=$(served_since "$before")
        read -r b n c bad TLS_SEEN <<<"$res"
        BYTES[$S-$tool-$i]=$b REQS[$S-$tool-$i]=$n CONNS[$S-$tool-$i]=$c
        [[ $bad == 0 ]] || die "$S $tool run $i: $bad requests not answered 200 (see $NG/access.log)"
        "$check" "$d/target" "$tool run $i"
        drop_fs "$d"
      fi
    done
  done
}
check_tree() {  # DIR WHO
  local f=$WORK/mtree.check
  casync "${FEATURES[@]}" mtree "$1" | sort >"$f"
  if ! cmp -s "$WORK/mtree.src" "$f"; then
    diff "$WORK/mtree.src" "$f" >"$f.diff" || true
    head -5 "$f.diff"
    KEEP=1
    die "the tree deployed by $2 ($1) differs from the source (see $f.diff)"
  fi
}
check_disk() {  # FILE WHO
  cmp -s "$DISK" "$1" || { KEEP=1; die "the disk image deployed by $2 ($1) differs from the source"; }
  rm -f "$1"  # 2 GiB each: not kept past its check
}
pause

if [[ $SERIES == *T* ]]; then
step "T: deploy the tree over the network into a fresh directory ($RUNS runs each, alternating; load $(load))"
series T bench-tree=1 /srv/tree tree.caidx tree.castr check_tree
T_LOAD=$(load)
echo "every deployed tree equals the source (casync mtree)"
T_AGENT_LOG=$(cat "$WORK"/logs/bench-T*.log | grep -E 'job [0-9a-f]+:|warn|error|\[W|\[E' || true)
rm -rf "$WORK/agents" "$WORK/T"
pause
fi

if [[ $SERIES == *D* ]]; then
step "D: deploy the 2 GiB disk image over the network into a fresh file (load $(load))"
series D bench-disk=1 /srv/disk.img disk.caibx disk.castr check_disk
D_LOAD=$(load)
echo "every deployed disk image equals the source (cmp)"
D_AGENT_LOG=$(cat "$WORK"/logs/bench-D*.log | grep -E 'job [0-9a-f]+:|warn|error|\[W|\[E' || true)
rm -rf "$WORK/agents" "$WORK/D"
fi

ratio() { echo "scale=2; $1 / $2" | bc -l; }
mbps() { echo "scale=1; $1 / $2 / 1000000" | bc -l; }
row() {  # SERIES BYTES WHAT LOAD CASYNC-TOOL
  local p c
  p=$(median "$1-parc"); c=$(median "$1-$5")
  printf '%-36s %8.2f s %7s MB/s | %8.2f s %7s MB/s | %5sx   load %s\n' "$3" "$p" "$(mbps "$2" "$p")" "$c" "$(mbps "$2" "$c")" "$(ratio "$c" "$p")" "$4"
}
runs_of() {  # SERIES TOOL: each run's seconds
  grep -E "^$1-$2-[0-9]+ " "$LOG" | awk '{printf "%.2f ", $2}'
}

step "results: medians of $RUNS alternating runs over 127.0.0.1, each ending with sync"
echo "Parc: parc-server -> fresh parc-agent (empty chunk cache), gRPC over mutual TLS, timed from 'parcctl image deploy --watch' until the deployment is finished"
echo "casync: casync extract from nginx, $CASYNC_TRANSPORT; nginx TLS ${TLS_SEEN:-?}"
echo
printf '%-36s %-27s | %-27s | %s\n' "" "Parc" "casync (queue in $QUEUE_LABEL)" "casync time / Parc time"
if [[ $SERIES == *T* ]]; then
  row T "$TREE_BYTES" "T tree deploy (network)" "$T_LOAD" casync
  [[ -z ${CASYNC_SHM_TOOL[*]} ]] || row T "$TREE_BYTES" "   casync/tmpfs: queue in $CASYNC_QUEUE_SHM" "$T_LOAD" casyncshm
fi
if [[ $SERIES == *D* ]]; then
  row D "$DISK_BYTES" "D disk image deploy (network, 2 GiB)" "$D_LOAD" casync
  [[ -z ${CASYNC_SHM_TOOL[*]} ]] || row D "$DISK_BYTES" "   casync/tmpfs: queue in $CASYNC_QUEUE_SHM" "$D_LOAD" casyncshm
fi
echo "   (MB/s = tree file bytes $TREE_BYTES or image bytes $DISK_BYTES per second)"
echo "   Parc's time also covers its check of the result (VerifyTree before commit; the block image read back"
echo "   and checked) and writing every fetched chunk to the agent's cache; casync writes no cache and checks nothing after."
echo
echo "bytes transferred per run (Parc: job fetched_bytes; casync: sum of nginx \$body_bytes_sent, requests, connections)"
for S in $SERIES_LIST; do
  for i in $(seq 1 "$RUNS"); do
    printf '   %s run %s: Parc %12s B | casync %12s B in %6s requests over %s connection(s)' "$S" "$i" \
      "${BYTES[$S-parc-$i]}" "${BYTES[$S-casync-$i]}" "${REQS[$S-casync-$i]}" "${CONNS[$S-casync-$i]}"
    [[ -z ${CASYNC_SHM_TOOL[*]} ]] || printf ' | casync/tmpfs %12s B in %6s requests' "${BYTES[$S-casyncshm-$i]}" "${REQS[$S-casyncshm-$i]}"
    echo
  done
done
echo
echo "every run (s):"
for S in $SERIES_LIST; do echo "   $S Parc: $(runs_of "$S" parc)  casync: $(runs_of "$S" casync)  casync/tmpfs: $(runs_of "$S" casyncshm)"; done
echo
echo "CPU seconds per run (busy = user+system+irq on all cores, kernel threads such as writeback included, of cores x seconds;"
echo "rest = busy minus what the two sides used: other processes, kernel writeback, this script; steal = taken by the hypervisor):"
for S in $SERIES_LIST; do
  for i in $(seq 1 "$RUNS"); do
    for tool in parc casync "${CASYNC_SHM_TOOL[@]}"; do
      read -r _ busy side kids steal <<<"$(grep "^$S-$tool-$i " "$WORK/cpu")"
      secs=$(awk -v l="$S-$tool-$i" '$1 == l {print $2}' "$LOG")
      if [[ $tool == parc ]]; then
        a=${AGENT_CPU[$S-parc-$i]}
        printf '   %s run %s Parc:   %7.2f s; agent %6.2f, server %6.2f, parcctl+script %5.2f | busy %6.2f of %6.2f | rest %6.2f | steal %5.2f\n' \
          "$S" "$i" "$secs" "$a" "$(echo "$side - $a" | bc -l)" "$kids" "$busy" "$(echo "$(nproc) * $secs" | bc -l)" "$(echo "$busy - $side - $kids" | bc -l)" "$steal"
      else
        printf '   %s run %s %-7s %7.2f s; casync+helper %6.2f, nginx %6.2f                 | busy %6.2f of %6.2f | rest %6.2f | steal %5.2f\n' \
          "$S" "$i" "${tool/casyncshm/c/tmpfs}:" "$secs" "$kids" "$side" "$busy" "$(echo "$(nproc) * $secs" | bc -l)" "$(echo "$busy - $side - $kids" | bc -l)" "$steal"
      fi
    done
  done
done
echo
echo "Parc job phases per run (state/first word of the job's progress message, seconds until the next one; from the watch stream):"
for S in $SERIES_LIST; do
  for i in $(seq 1 "$RUNS"); do echo "   $S run $i: ${PHASES[$S-parc-$i]}"; done
done
echo
echo "agent log (job lines, warnings, errors):"
[[ -z ${T_AGENT_LOG:-} ]] || echo "$T_AGENT_LOG" | sed 's/^/   /'
[[ -z ${D_AGENT_LOG:-} ]] || echo "$D_AGENT_LOG" | sed 's/^/   /'
server_warn=$(grep -E 'warn|error|\[W|\[E' "$WORK/server.log" | tail -10 || true)
[[ -z $server_warn ]] || { echo "server log (warnings, errors; last 10):"; echo "$server_warn" | sed 's/^/   /'; }
echo
echo "load at end: $(load)"
echo "raw timings: $(tr '\n' ' ' <"$LOG")"
