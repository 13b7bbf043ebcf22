#!/usr/bin/env bash
# Push one big signed package to N agents on loopback (issue 3's target) and,
# in the same run, the same bytes fetched N times in parallel by curl over
# HTTPS from a local nginx, the baseline. Target: Parc >= 0.7x nginx.
#
#   tests/bench/push_vs_nginx.sh [BUILD_DIR] [N_AGENTS] [SIZE_MB]
#
# BUILD_DIR defaults to /work/main/build-main, N_AGENTS to 50, SIZE_MB to 200.
# Needs root only to install nginx/curl if missing (apt-get); nginx runs from a
# config in a temp dir on a free 127.0.0.1 port, never touching /etc/nginx.
# Disk: about 3 x N x SIZE_MB (agent cache + staging + installed file), set
# TMPDIR to put the work dir elsewhere. Not part of ctest.
#
# What is compared:
#  1. deploy: Parc's time runs from 'deploy create' until the deployment is
#     completed, so it includes each agent's download (digest on the way),
#     signature check, extraction and transactional install (fsynced on the one
#     disk all N simulated endpoints share); curl only downloads to /dev/null.
#     Each agent logs its phases ("job ...: installed ... download ... s,
#     signature ... extract ... applying ..."); they are summed up below.
#  2. transfer: the same bytes fetched N times in parallel with GetContent
#     (tests/bench/parc-fetch-bench, the agent's bulk channel, every byte
#     SHA-256'd as the agent does, thrown away like curl's) against N parallel
#     curls, alternating, ROUNDS times (default 3); medians and their ratio.
# Set ROUNDS=0 to skip 2. The load average before each part is printed.
set -euo pipefail

build=${1:-/work/main/build-main}
n=${2:-50}
size_mb=${3:-200}
server_bin=$build/server/parc-server
agent_bin=$build/agent/parc-agent
ctl_bin=$build/ctl/parcctl
fetch_bin=$build/tests/bench/parc-fetch-bench
rounds=${ROUNDS:-3}
[[ -x $fetch_bin ]] || { echo "$fetch_bin is not built: transfer rounds skipped" >&2; rounds=0; }
for b in "$server_bin" "$agent_bin" "$ctl_bin"; do
  [[ -x $b ]] || { echo "$b is not built" >&2; exit 1; }
done

need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null ||
    { [[ ${need[0]} == nginx-light ]] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx curl jq openssl >/dev/null; }
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d "${TMPDIR:-/tmp}/parc-push-bench.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ ${KEEP_WORK:-0} == 1 ]]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

now_ns() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e9 }'; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
ctl() { "$ctl_bin" --credentials "$work/server/admin.pem" --server "$addr" "$@"; }

echo "work dir: $work; $n agents; $size_mb MB" >&2

# 1. The package: one incompressible file.
pkg=$work/pkgsrc
mkdir -p "$pkg/root/opt/big"
cat >"$pkg/package.json" <<JSON
{"format": 1, "name": "big", "version": "1.0-1", "summary": "bench", "publisher": "bench",
 "platforms": ["linux"], "architectures": ["all"]}
JSON
head -c "$((size_mb * 1024 * 1024))" /dev/urandom >"$pkg/root/opt/big/blob"
blob_sha=$(sha256sum "$pkg/root/opt/big/blob" | cut -d' ' -f1)
"$ctl_bin" key create --name bench --dir "$work/keys" >/dev/null
"$ctl_bin" package build "$pkg" -o "$work/big.parc" --key "$work/keys/bench.key" >/dev/null
rm -f "$pkg/root/opt/big/blob"
parc_bytes=$(stat -c %s "$work/big.parc")
echo "package: $parc_bytes bytes, blob sha256 $blob_sha" >&2

# 2. The server.
mkdir -p "$work/server"
"$server_bin" --state-dir "$work/server" --listen 127.0.0.1:0 >"$work/server.log" 2>&1 &
pids+=($!)
for ((i = 0; i < 100; i++)); do [[ -s $work/server/server.addr ]] && break; sleep 0.1; done
addr=$(head -1 "$work/server/server.addr")
[[ -n $addr ]] || { echo "server did not start:" >&2; tail "$work/server.log" >&2; exit 1; }
echo "server: $addr" >&2
ctl group create bench >/dev/null
ctl key add "$work/keys/bench.pub" --name bench >/dev/null
t0=$(now_ns)
ctl package push "$work/big.parc" >/dev/null
t1=$(now_ns)
push_ns=$((t1 - t0))

# 3. N agents, each with a tiny root of its own.
for ((i = 1; i <= n; i++)); do
  r=$work/agents/$i/root s=$work/agents/$i/state
  mkdir -p "$r/etc" "$r/var/lib/dpkg" "$s"
  echo "bench$i" >"$r/etc/hostname"
  : >"$r/var/lib/dpkg/status"
  echo "root:x:0:0:root:/root:/bin/bash" >"$r/etc/passwd"
  echo "root:x:0:" >"$r/etc/group"
  tok_json=$(ctl --json token create --group bench)
  tok=$(jq -r '.token // .secret // empty' <<<"$tok_json")
  fp=$(jq -r '.ca_fingerprint // .fingerprint // empty' <<<"$tok_json")
  [[ -n $tok && -n $fp ]] || { echo "unexpected token JSON: $tok_json" >&2; exit 1; }
  "$agent_bin" --state-dir "$s" --root "$r" enroll --server "$addr" --token "$tok" \
    --ca-fingerprint "$fp" >"$work/agents/$i/enroll.log" 2>&1 ||
    { echo "enroll $i failed:" >&2; cat "$work/agents/$i/enroll.log" >&2; exit 1; }
  "$agent_bin" --state-dir "$s" --root "$r" run >"$work/agents/$i/run.log" 2>&1 &
  pids+=($!)
done
online=0
for ((i = 0; i < 600; i++)); do
  online=$(ctl --json hosts --group bench --online | jq '.hosts | length')
  ((online >= n)) && break
  sleep 0.5
done
((online >= n)) || { echo "only $online of $n agents online" >&2; exit 1; }
echo "agents online: $online" >&2

# 4. The push.
echo "load before the deploy: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
load_deploy=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(now_ns)
dep_json=$(ctl --json deploy create big --to group:bench --max-parallel "$n")
dep=$(jq -r '.id // .deployment.id // .deployment_id // empty' <<<"$dep_json")
[[ -n $dep ]] || { echo "unexpected deploy JSON: $dep_json" >&2; exit 1; }
state= poll_fail=0
while :; do
  # A poll that fails (the admin connection timing out while the server is
  # busy sending) is counted and retried; it does not end the measurement.
  if ! st_json=$(ctl --json deploy status "$dep" 2>>"$work/poll-errors.log"); then
    poll_fail=$((poll_fail + 1))
    if ((($(now_ns) - t0) / 1000000000 > 3600)); then echo "deployment status unknown after 1 h" >&2; break; fi
    echo "status poll failed at $(secs $(($(now_ns) - t0))) s" >&2
    sleep 0.2
    continue
  fi
  state=$(jq -r '.state // .deployment.state' <<<"$st_json")
  case $state in completed | failed | halted | cancelled | canceled) break ;; esac
  if ((($(now_ns) - t0) / 1000000000 > 3600)); then echo "deployment still $state after 1 h" >&2; break; fi
  sleep 0.2
done
t1=$(now_ns)
parc_ns=$((t1 - t0))
echo "$st_json" >"$work/deploy-status.json"
jobs_ok=$(jq '[(.jobs // .deployment.jobs)[] | select(.state == "succeeded")] | length' <<<"$st_json")
jobs_all=$(jq '(.jobs // .deployment.jobs) | length' <<<"$st_json")
files_ok=0
for ((i = 1; i <= n; i++)); do
  f=$work/agents/$i/root/opt/big/blob
  [[ -f $f && $(sha256sum "$f" | cut -d' ' -f1) == "$blob_sha" ]] && files_ok=$((files_ok + 1))
done
echo "deployment $dep: $state, jobs succeeded $jobs_ok/$jobs_all, blob sha256 right on $files_ok/$n roots" >&2
if [[ $state != completed || $jobs_ok != "$n" ]]; then
  jq -r '(.jobs // .deployment.jobs)[] | select(.state != "succeeded") | "\(.host // .hostname): \(.state) \(.message // "")"' \
    <<<"$st_json" | head -5 >&2 || true
fi
# Where the agents' time went: each logs one line per job with its phases.
phases=$(cat "$work"/agents/*/run.log | { grep -o 'installed big [^:]*:.*' || true; } | awk '
  { for (i = 1; i <= NF; i++) if ($(i+1) == "s" || $(i+1) == "s,") { k = $(i-1); if ($i ~ /^[0-9.]+$/) { sum[k] += $i; if ($i > max[k]) max[k] = $i; n[k]++ } } }
  END { for (k in sum) printf "    %-26s mean %6.2f s  max %6.2f s  (%d agents)\n", k, sum[k] / n[k], max[k], n[k] }' | sort)
# Free the disk before the baseline (kill agents so nothing is still writing).
for ((i = 1; i <= n; i++)); do rm -rf "$work/agents/$i/root/opt"; done
sync

# 5. Baseline: nginx over HTTPS on loopback, N curls at once.
ng=$work/nginx
mkdir -p "$ng/html" "$ng/tmp"
chmod o+x "$work"  # nginx workers run as an unprivileged user (www-data)
ln "$work/big.parc" "$ng/html/big.parc" 2>/dev/null || cp "$work/big.parc" "$ng/html/big.parc"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -keyout "$ng/key.pem" -out "$ng/cert.pem" 2>/dev/null
port=$(free_port)
cat >"$ng/nginx.conf" <<CONF
worker_processes auto;
error_log $ng/error.log;
events { worker_connections 1024; }
http {
  access_log $ng/access.log;
  client_body_temp_path $ng/tmp/body;
  proxy_temp_path $ng/tmp/proxy;
  fastcgi_temp_path $ng/tmp/fastcgi;
  uwsgi_temp_path $ng/tmp/uwsgi;
  scgi_temp_path $ng/tmp/scgi;
  sendfile on;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $ng/cert.pem;
    ssl_certificate_key $ng/key.pem;
    root $ng/html;
  }
}
CONF
"$nginx_bin" -p "$ng" -c "$ng/nginx.conf" -g "daemon off; pid $ng/nginx.pid;" >"$ng/stdout.log" 2>&1 &
pids+=($!)
for ((i = 0; i < 50; i++)); do curl -skf -o /dev/null -r 0-0 "https://127.0.0.1:$port/big.parc" && break; sleep 0.1; done
cat "$ng/html/big.parc" >/dev/null  # same warm page cache as the server had
run_curls() {
  local t0 t1 p cpids=()
  t0=$(now_ns)
  for ((i = 1; i <= n; i++)); do
    curl -skf -o /dev/null -w '%{size_download}\n' "https://127.0.0.1:$port/big.parc" >"$ng/curl.$i" &
    cpids+=($!)
  done
  curl_fail=0
  for p in "${cpids[@]}"; do wait "$p" || curl_fail=$((curl_fail + 1)); done
  t1=$(now_ns)
  nginx_ns=$((t1 - t0))
  curl_bytes=$(cat "$ng"/curl.* | awk '{ s += $1 } END { printf "%.0f", s }')
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
run_curls
curl_times=$nginx_ns
# 5b. Transfer alone: GetContent (as the agent fetches, digest on the way) vs curl, alternating.
parc_sha=$(sha256sum "$work/big.parc" | cut -d' ' -f1)
fetch_times= curl_round_times= fetch_fail=0
load_transfer=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= rounds; r++)); do
  t0=$(now_ns)
  "$fetch_bin" --bulk --hash "$parc_sha" "$work"/agents/*/state >"$work/fetch.$r.log" 2>&1 || fetch_fail=$((fetch_fail + 1))
  t1=$(now_ns)
  fetch_times+="$((t1 - t0)) "
  run_curls
  curl_round_times+="$nginx_ns "
  echo "transfer round $r: GetContent $(secs $((t1 - t0))) s ($(cat "$work/fetch.$r.log" | tail -1)), curl $(secs $nginx_ns) s" >&2
done

# 6. Report. The deploy is compared with the median of every curl run (the
# first one and those of the transfer rounds), not with whichever ran last.
nginx_ns=$(tr ' ' '\n' <<<"$curl_times $curl_round_times" | grep . | median)
echo
echo "Push of one ${size_mb} MiB incompressible file (package $parc_bytes bytes) to $n agents, loopback, $(nproc) cores"
echo "  package push (upload to server, once): $(secs $push_ns) s"
awk -v n="$n" -v b="$parc_bytes" -v pns="$parc_ns" -v nns="$nginx_ns" -v cb="$curl_bytes" \
  -v ok="$jobs_ok" -v files="$files_ok" -v cf="$curl_fail" 'BEGIN {
  mb = 1024 * 1024; pt = pns / 1e9; nt = nns / 1e9
  pr = n * b / mb / pt; nr = cb / mb / nt
  printf "  parc:  deploy create -> completed %.2f s, %d/%d jobs succeeded, %d/%d blobs verified; aggregate %.1f MiB/s\n", pt, ok, n, files, n, pr
  printf "  nginx: %d parallel curl -k HTTPS to /dev/null, median of all runs %.2f s, %d failed (last run), %.0f bytes; aggregate %.1f MiB/s\n", n, nt, cf, cb, nr
  printf "  ratio parc/nginx throughput: %.2f (target >= 0.7)\n", pr / nr
}'
echo "  note: parc's time includes per-agent download, verification, extraction and install"
echo "        (and the status polling at 0.2 s); curl only downloads to /dev/null. Load before: $load_deploy"
echo "  status polls that failed during the deploy (admin connection timed out): $poll_fail"
echo "  every curl run (s): $(for t in $curl_times $curl_round_times; do printf '%s ' "$(secs "$t")"; done)"
echo "  agent phases (from each agent's log):"
echo "$phases"
if ((rounds > 0)); then
  mf=$(tr ' ' '\n' <<<"$fetch_times" | grep . | median)
  mc=$(tr ' ' '\n' <<<"$curl_round_times" | grep . | median)
  awk -v n="$n" -v b="$parc_bytes" -v mf="$mf" -v mc="$mc" -v r="$rounds" -v ff="$fetch_fail" -v ld="$load_transfer" 'BEGIN {
    mb = 1024 * 1024
    printf "  transfer only, %d rounds alternating (load before: %s):\n", r, ld
    printf "    GetContent x%d (bulk channel, SHA-256 on the way, %d failed rounds): median %.2f s, %.1f MiB/s\n", n, ff, mf / 1e9, n * b / mb / (mf / 1e9)
    printf "    curl x%d: median %.2f s, %.1f MiB/s\n", n, mc / 1e9, n * b / mb / (mc / 1e9)
    printf "    ratio GetContent/curl throughput: %.2f\n", mc / mf
  }'
fi
[[ $state == completed && $jobs_ok == "$n" && $files_ok == "$n" && $curl_fail == 0 ]]
