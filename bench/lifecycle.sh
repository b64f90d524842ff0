#!/usr/bin/env bash
# Lifecycle benchmark: a history of 30 backups in 3 groups, then `forget --keep-last 5
# --prune`, timed with kvbackup's request counts, beside restic on the same history.
#
# usage: lifecycle.sh DATA WORKDIR
#   DATA     a folder to back up (e.g. the shared benchmark dataset's tree; a small folder
#            for a quick check). It is copied; the copy changes a little between backups.
#   WORKDIR  where the copy and the repositories go (emptied first).
# kvbackup: backups 1, 11 and 21 are --full (a new group each). restic (if installed):
# the same 30 states of the folder. Prints wall seconds and, for kvbackup, requests made.
set -euo pipefail
DATA=$(cd "${1:?usage: lifecycle.sh DATA WORKDIR}" && pwd)
W=${2:?usage: lifecycle.sh DATA WORKDIR}
rm -rf "$W"; mkdir -p "$W"; W=$(cd "$W" && pwd)
export KVBACKUP_PASSWORD=benchpass RESTIC_PASSWORD=benchpass KVBACKUP_CACHE_DIR=$W/cache
SRC=$W/src
cp -a "$DATA" "$SRC"
HAVE_RESTIC=$(command -v restic >/dev/null && echo 1 || echo 0)
kvbackup init "$W/kv" >/dev/null
[[ $HAVE_RESTIC == 1 ]] && restic init -r "$W/restic" -q

change() { # a small, different change each time: one appended line, one new file
  local n=$1
  mkdir -p "$SRC/.bench"
  echo "backup $n" >>"$SRC/.bench/log.txt"
  head -c 65536 /dev/urandom >"$SRC/.bench/new-$n.bin"
}

now() { date +%s.%N; }
t0=$(now)
for n in $(seq 1 30); do
  change "$n"
  full=(); (( n % 10 == 1 )) && full=(--full)
  kvbackup backup "$SRC" --repo "$W/kv" -q "${full[@]}"
  [[ $HAVE_RESTIC == 1 ]] && restic -r "$W/restic" backup -q "$SRC" >/dev/null
done
echo "history: 30 backups made in $(echo "$(now) - $t0" | bc) s (both tools)"
echo "kvbackup repository before: $(du -sm "$W/kv" | cut -f1) MiB$( [[ $HAVE_RESTIC == 1 ]] && echo ", restic: $(du -sm "$W/restic" | cut -f1) MiB")"

t=$(now)
kvbackup forget --repo "$W/kv" --keep-last 5 --prune --json >"$W/kv-forget.json"
kv_s=$(echo "$(now) - $t" | bc)
python3 - "$W/kv-forget.json" "$kv_s" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))
p, r = out["prune"], out["requests"]
print(f"kvbackup forget --keep-last 5 --prune: {float(sys.argv[2]):.2f} s; "
      f"{len(out['removed'])} snapshots removed, {len(p['groups_deleted'])} groups deleted, "
      f"{p['packs_repacked']} packs repacked, {p['bytes_freed'] / 2**20:.1f} MiB freed; "
      f"requests GET {r['get']} PUT {r['put']} LIST {r['list']} DELETE {r['delete']}, "
      f"{r['bytes_read'] / 2**20:.1f} MiB read, {r['bytes_written'] / 2**20:.1f} MiB written")
PY
echo "kvbackup repository after: $(du -sm "$W/kv" | cut -f1) MiB"
if [[ $HAVE_RESTIC == 1 ]]; then
  t=$(now)
  restic -r "$W/restic" forget --keep-last 5 --prune -q >/dev/null
  echo "restic forget --keep-last 5 --prune: $(echo "$(now) - $t" | bc) s (restic counts no requests)"
  echo "restic repository after: $(du -sm "$W/restic" | cut -f1) MiB"
else
  echo "restic not installed: no comparison"
fi
kvbackup verify --repo "$W/kv" -q && echo "kvbackup verify: clean"
