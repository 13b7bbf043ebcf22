#!/usr/bin/env bash
# Reference comparison of Parc's ANSSI-BP-028 baseline with OpenSCAP.
#
# Usage (as root): tests/reference/compare_oscap.sh BUILD_DIR [RUNS]
#
# On a debootstrap'd Debian 12 tree (minbase + linux-base, openssh-server,
# sudo; built once and cached in $PARC_REFERENCE_CACHE, default
# /var/tmp/parc-reference), for the levels minimal and intermediary:
#  1. speed: RUNS times (default 3), alternately, oscap-chroot's
#     anssi_bp28_<level> profile and `parc-agent policy check --level <level>`
#     on a fresh copy of the tree (read-only bind mount). Both are timed as the
#     wall time of the whole process (start, content parsing, evaluation,
#     results written), medians and their ratio are printed;
#  2. agreement: a rule-by-rule table of Parc's verdicts against oscap's,
#     joined through tests/reference/ssg_mapping.toml;
#  3. remediation: `parc-agent policy apply` on another fresh copy, oscap again,
#     how its verdicts moved; a second apply must change nothing;
#  4. rollback: `parc-agent policy rollback`, then the tree must be
#     byte-identical to the copy it started from and oscap's verdicts must be
#     the original ones.
#
# Needs network access to the Debian archive the first time (apt-get for the
# tools, debootstrap for the tree). Exit status: 0 targets met; 1 a tool
# failed or the tree could not be built; 2 it all ran but a target was missed
# (agreement < 95% or unexplained disagreements, Parc < 10x faster, rollback
# not exact).
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR [RUNS]" >&2; exit 1; }
[[ $# -ge 1 && $# -le 2 ]] || usage
BUILD_DIR=$(realpath "$1")
RUNS=${2:-3}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || usage

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
AGENT=$BUILD_DIR/agent/parc-agent
MAPPING=$HERE/ssg_mapping.toml
HELPER=(python3 "$HERE/ssg_compare.py")
BASELINE=anssi-bp28-debian12
CACHE=${PARC_REFERENCE_CACHE:-/var/tmp/parc-reference}
BASE=$CACHE/bookworm-base
SSG_DEB=${SSG_DEB:-/work/shared/reference/ssg-debian_0.1.76-1_all.deb}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PROFILE_PREFIX=xccdf_org.ssgproject.content_profile_anssi_bp28_
LEVELS=(minimal intermediary)
# The baseline checked in next to this script, not a copy installed earlier.
export PARC_BASELINE_DIR=$SRC/policy/baselines
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree

die() { echo "compare_oscap: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap, bind mounts, oscap-chroot)"
[[ -x $AGENT ]] || die "$AGENT not found: build parc-agent first (ninja -C BUILD_DIR parc-agent)"
[[ -f $MAPPING ]] || die "$MAPPING not found"

WORK=$(mktemp -d /var/tmp/parc-compare.XXXXXX)
MOUNTS=()
cleanup() {
  local m
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
  if [[ ${KEEP:-0} == 1 ]]; then echo "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- tools -----------------------------------------------------------------
step "tools"
missing=()
for p in openscap-scanner openscap-utils debootstrap python3; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing ${missing[*]}"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
fi
command -v oscap-chroot >/dev/null || die "oscap-chroot not found (package openscap-utils)"
echo "oscap $(oscap --version | head -1 | awk '{print $NF}'), parc-agent $AGENT"

DS=$CACHE/ssg-0.1.76/usr/share/xml/scap/ssg/content/ssg-debian12-ds.xml
if [[ ! -f $DS ]]; then
  [[ -f $SSG_DEB ]] || die "SCAP Security Guide package $SSG_DEB not found (set SSG_DEB)"
  mkdir -p "$CACHE/ssg-0.1.76"
  dpkg-deb -x "$SSG_DEB" "$CACHE/ssg-0.1.76" || die "cannot extract $SSG_DEB"
fi
echo "SSG datastream $DS"

# --- the reference tree, built once ----------------------------------------
step "reference tree"
if [[ ! -f $CACHE/bookworm-base.complete ]]; then
  rm -rf "$BASE" "$BASE.tmp"
  mkdir -p "$CACHE"
  echo "debootstrap --variant=minbase --include=linux-base,openssh-server,sudo bookworm $BASE $MIRROR"
  debootstrap --variant=minbase --include=linux-base,openssh-server,sudo bookworm "$BASE.tmp" "$MIRROR" \
    >"$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed (see $CACHE/debootstrap.log)"
  mv "$BASE.tmp" "$BASE"
  touch "$CACHE/bookworm-base.complete"
fi
echo "$BASE ($(du -sh "$BASE" | cut -f1), $(grep -c '^Package:' "$BASE/var/lib/dpkg/status") packages, cached)"

fresh_copy() {  # DEST: a new copy of the cached tree
  cp -a "$BASE" "$1" || die "cannot copy the tree to $1"
}

mount_ro() {  # TREE MOUNTPOINT: read-only bind mount: on a writable target oscap 1.3.7 writes apt
              # caches into the tree and its dpkginfo probe can fail (every package then looks absent)
  mkdir -p "$2"
  mount --bind "$1" "$2" || die "bind mount of $1 failed"
  MOUNTS+=("$2")
  mount -o remount,bind,ro "$2" || die "read-only remount of $2 failed"
}

unmount() {
  umount "$1" || die "cannot unmount $1"
  local keep=() m
  for m in "${MOUNTS[@]}"; do [[ $m == "$1" ]] || keep+=("$m"); done
  MOUNTS=("${keep[@]}")
}

now() { date +%s.%N; }

# oscap LEVEL TREE OUT: evaluates the profile on TREE (a read-only mount); prints the wall time.
oscap_eval() {
  local level=$1 tree=$2 out=$3 rc=0 t0 t1
  t0=$(now)
  oscap-chroot "$tree" xccdf eval --profile "$PROFILE_PREFIX$level" --results-arf "$out.arf.xml" "$DS" \
    >"$out.oscap.out" 2>"$out.oscap.err" || rc=$?
  t1=$(now)
  # 0: all pass, 2: some rule failed; anything else is oscap failing.
  [[ $rc -eq 0 || $rc -eq 2 ]] || die "oscap ($level) exited with $rc: $(tail -3 "$out.oscap.err")"
  if grep -q 'dpkginfo_init has failed' "$out.oscap.err"; then
    die "oscap's dpkginfo probe failed (results invalid: every package would look absent)"
  fi
  [[ -s $out.arf.xml ]] || die "oscap ($level) wrote no results"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

# parc_check LEVEL TREE OUT: prints the wall time of the whole parc-agent process.
parc_check() {
  local level=$1 tree=$2 out=$3 rc=0 t0 t1
  t0=$(now)
  "$AGENT" policy check --root "$tree" --baseline "$BASELINE" --level "$level" --json \
    --state-dir "$WORK/state" >"$out.parc.json" 2>"$out.parc.err" || rc=$?
  t1=$(now)
  # 0: compliant, 3: failing rules; anything else is parc-agent failing.
  [[ $rc -eq 0 || $rc -eq 3 ]] || die "parc-agent policy check ($level) exited with $rc: $(tail -3 "$out.parc.err")"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

mkdir -p "$WORK/state"

# --- 1. speed, on one fresh copy -------------------------------------------
step "speed: $RUNS alternating runs per level (wall time of each whole process)"
fresh_copy "$WORK/check-tree"
mount_ro "$WORK/check-tree" "$WORK/check-mnt"
: >"$WORK/timing"
for run in $(seq 1 "$RUNS"); do
  for level in "${LEVELS[@]}"; do
    out=$WORK/check-$level-$run
    # Alternate who goes first, so that neither always finds warm caches.
    if (( run % 2 )); then
      t=$(oscap_eval "$level" "$WORK/check-mnt" "$out") || exit 1; echo "oscap $level $t" >>"$WORK/timing"
      t=$(parc_check "$level" "$WORK/check-mnt" "$out") || exit 1; echo "parc $level $t" >>"$WORK/timing"
    else
      t=$(parc_check "$level" "$WORK/check-mnt" "$out") || exit 1; echo "parc $level $t" >>"$WORK/timing"
      t=$(oscap_eval "$level" "$WORK/check-mnt" "$out") || exit 1; echo "oscap $level $t" >>"$WORK/timing"
    fi
  done
done
"${HELPER[@]}" timing "$WORK/timing" | tee "$WORK/timing.txt"
for level in "${LEVELS[@]}"; do
  for run in $(seq 2 "$RUNS"); do
    "${HELPER[@]}" same "$WORK/check-$level-1.arf.xml" "$WORK/check-$level-$run.arf.xml" >/dev/null ||
      die "oscap gave different verdicts in run $run ($level)"
    "${HELPER[@]}" same "$WORK/check-$level-1.parc.json" "$WORK/check-$level-$run.parc.json" >/dev/null ||
      die "parc-agent gave different verdicts in run $run ($level)"
  done
done
unmount "$WORK/check-mnt"

# --- 2. agreement ------------------------------------------------------------
status=0
for level in "${LEVELS[@]}"; do
  step "agreement, $level (oscap profile ${PROFILE_PREFIX}$level vs parc --level $level)"
  "${HELPER[@]}" table --mapping "$MAPPING" --level "$level" --parc "$WORK/check-$level-1.parc.json" \
    --arf "$WORK/check-$level-1.arf.xml" --summary "$WORK/agreement-$level.json"
done
step "coverage of the SSG intermediary profile by the mapping"
"${HELPER[@]}" coverage --mapping "$MAPPING" --arf "$WORK/check-intermediary-1.arf.xml" || status=2

# --- 3. apply ----------------------------------------------------------------
step "apply: parc-agent policy apply --level intermediary on a fresh copy, then oscap again"
fresh_copy "$WORK/apply-tree"
"${HELPER[@]}" snapshot "$WORK/apply-tree" "$WORK/snapshot-before"
rc=0
"$AGENT" policy apply --root "$WORK/apply-tree" --baseline "$BASELINE" --level intermediary --json \
  --state-dir "$WORK/state" >"$WORK/apply.json" 2>"$WORK/apply.err" || rc=$?
[[ $rc -eq 0 || $rc -eq 3 ]] || die "parc-agent policy apply exited with $rc: $(tail -3 "$WORK/apply.err")"
point=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print((j["point"] or {}).get("id",""))' "$WORK/apply.json")
[[ -n $point ]] || die "policy apply changed nothing on the pristine tree (no rollback point)"
python3 - "$WORK/apply.json" "$WORK" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
for phase in ("before", "after"):
    json.dump(j[phase], open(f"{sys.argv[2]}/apply-{phase}.parc.json", "w"))
b, a = j["before"]["summary"], j["after"]["summary"]
fixed = sum(1 for r in j["after"]["rules"] if r.get("remediated") and r["status"] == "pass")
left = [r["id"] for r in j["after"]["rules"] if r["status"] == "fail" and not r.get("manual")]
print(f"parc: before {b['pass']} pass / {b['fail']} fail / {b['na']} na / {b['error']} error; "
      f"after {a['pass']} pass / {a['fail']} fail / {a['na']} na / {a['error']} error; {fixed} rules fixed")
print("parc: failing after apply without being manual: " + (", ".join(left) if left else "none"))
EOF
mount_ro "$WORK/apply-tree" "$WORK/apply-mnt"
for level in "${LEVELS[@]}"; do
  oscap_eval "$level" "$WORK/apply-mnt" "$WORK/applied-$level" >/dev/null
  echo
  "${HELPER[@]}" changes --mapping "$MAPPING" --level "$level" --arf-before "$WORK/check-$level-1.arf.xml" \
    --arf-after "$WORK/applied-$level.arf.xml" --parc-after "$WORK/apply-after.parc.json" \
    --summary "$WORK/changes-$level.json"
done
unmount "$WORK/apply-mnt"

rc=0
"$AGENT" policy apply --root "$WORK/apply-tree" --baseline "$BASELINE" --level intermediary --json \
  --state-dir "$WORK/state" >"$WORK/apply2.json" 2>"$WORK/apply2.err" || rc=$?
[[ $rc -eq 0 || $rc -eq 3 ]] || die "second parc-agent policy apply exited with $rc: $(tail -3 "$WORK/apply2.err")"
point2=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print((j["point"] or {}).get("id",""))' "$WORK/apply2.json")
if [[ -n $point2 ]]; then
  echo "IDEMPOTENCE: a second apply made rollback point $point2"; status=2
else
  echo "second apply: nothing to do, no rollback point (idempotent)"
fi

# --- 4. rollback -------------------------------------------------------------
step "rollback: parc-agent policy rollback $point"
"$AGENT" policy rollback "$point" --root "$WORK/apply-tree" --state-dir "$WORK/state" >"$WORK/rollback.out" 2>&1 ||
  die "parc-agent policy rollback failed: $(tail -3 "$WORK/rollback.out")"
cat "$WORK/rollback.out"
"${HELPER[@]}" snapshot "$WORK/apply-tree" "$WORK/snapshot-after"
if "${HELPER[@]}" diffsnap "$WORK/snapshot-before" "$WORK/snapshot-after"; then
  echo "tree after rollback: byte-identical to the copy before apply (contents, modes, owners, links)"
  rollback_tree=identical
else
  echo "ROLLBACK: the tree differs from the copy before apply"; status=2; rollback_tree=different
fi
mount_ro "$WORK/apply-tree" "$WORK/apply-mnt"
rollback_oscap=identical
for level in "${LEVELS[@]}"; do
  oscap_eval "$level" "$WORK/apply-mnt" "$WORK/rolledback-$level" >/dev/null
  if "${HELPER[@]}" same "$WORK/check-$level-1.arf.xml" "$WORK/rolledback-$level.arf.xml"; then
    echo "oscap ($level) after rollback: the same verdicts as on the pristine tree"
  else
    echo "ROLLBACK: oscap ($level) verdicts differ from the pristine tree"; status=2; rollback_oscap=different
  fi
done
unmount "$WORK/apply-mnt"

# --- summary -----------------------------------------------------------------
step "summary"
python3 - "$WORK" "$RUNS" "$rollback_tree" "$rollback_oscap" <<'EOF' || status=2
import json, statistics, sys
work, runs, rb_tree, rb_oscap = sys.argv[1:5]
t = {}
for line in open(f"{work}/timing"):
    tool, level, secs = line.split()
    t.setdefault(level, {}).setdefault(tool, []).append(float(secs))
ok = True
for level in ("minimal", "intermediary"):
    a = json.load(open(f"{work}/agreement-{level}.json"))
    c = json.load(open(f"{work}/changes-{level}.json"))
    o, p = statistics.median(t[level]["oscap"]), statistics.median(t[level]["parc"])
    print(f"{level:<13} agreement {a['agreement']:.1f}% of {a['rows']} mapped rules "
          f"(identical {a['identical']:.1f}%, {a['explained']} explained, {a['UNEXPLAINED']} unexplained); "
          f"speed oscap {o:.2f} s / parc {p:.3f} s = {o / p:.1f}x (medians of {runs}); "
          f"oscap after apply: fail {c['fail_before']} -> {c['fail_after']} ({c['fail_to_pass']} fail->pass, "
          f"{c['pass_to_fail']} pass->fail)")
    if a["agreement"] < 95.0 or a["UNEXPLAINED"]:
        print(f"  TARGET MISSED ({level}): agreement >= 95% with every disagreement explained"); ok = False
    if o / p < 10.0:
        print(f"  TARGET MISSED ({level}): parc >= 10x faster than oscap"); ok = False
    if c["pass_to_fail"] or c["unexplained"]:
        print(f"  TARGET MISSED ({level}): apply must not make oscap verdicts worse or disagree unexplained"); ok = False
print(f"rollback: tree {rb_tree}, oscap verdicts {rb_oscap} to the pristine tree's")
sys.exit(0 if ok else 1)
EOF
exit $status
