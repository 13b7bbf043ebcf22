# Sourced by the image benchmarks: a NEW ext4 filesystem per timed run.
#
# On these machines ext4 creates files several times slower for a while after
# mass deletion (inode allocation scans recently deleted inodes, DESIGN.md,
# "Measuring on these machines"), so a run writing into a directory where the
# previous run's tree was just deleted measures that, not the tool. A fresh
# filesystem per run (an 8 GiB sparse file on a loop device, made with mkfs
# and mounted just before the run) gives both tools a machine's own disk.
#
# Needs: WORK (a work directory), die (a function), FRESH_FS (1: on, the
# default; 0: plain directories in WORK). MOUNTS lists what is mounted:
# call drop_all_fs from the script's EXIT trap.
FRESH_FS=${FRESH_FS:-1}
MOUNTS=()
# fresh_fs DIR: a new, empty ext4 filesystem mounted at DIR (FRESH_FS=1).
fresh_fs() {
  mkdir -p "$1"
  [[ $FRESH_FS == 1 ]] || return 0
  local img
  img=$WORK/fs/$(echo "$1" | tr / _).img
  mkdir -p "$WORK/fs"
  truncate -s 8G "$img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$img" || die "mkfs.ext4 $img failed"
  mount -o loop "$img" "$1" || die "cannot mount a loop filesystem at $1 (FRESH_FS=0 to run without)"
  MOUNTS+=("$1")
}
# drop_fs DIR: unmounts what fresh_fs DIR mounted and deletes it.
drop_fs() {
  [[ $FRESH_FS == 1 ]] || return 0
  sync
  umount "$1" || die "cannot unmount $1"
  local keep=() m
  for m in "${MOUNTS[@]}"; do [[ $m == "$1" ]] || keep+=("$m"); done
  MOUNTS=("${keep[@]}")
  rm -f "$WORK/fs/$(echo "$1" | tr / _).img"
}
drop_all_fs() {
  local m
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  MOUNTS=()
}
