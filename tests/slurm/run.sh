#!/bin/sh
# vit-classify as a Slurm job array, on a real Slurm started here: munged,
# slurmctld and slurmd for one node on loopback, state in a temporary folder,
# stopped at the end. The array script is the one in docs/scale.md.
#
#   tests/slurm/run.sh build/apps/vit-classify/vit-classify
#
# Checks: the union of the four parts equals an unsharded run (same images,
# same top-k, logits within 1e-6), no image twice, shards disjoint; then one
# array task is cancelled mid-run with scancel, resubmitted (the script passes
# --resume), and the output is complete with no duplicates and the records
# written before the cancel untouched. Needs root (it installs slurm-wlm and
# munge when they are missing, and runs the daemons as root).
set -eu

cli=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$cli" ] || { echo "slurm test: $cli is not an executable" >&2; exit 1; }

step() { printf '=== slurm test: %s (%s)\n' "$1" "$(date +%T)"; }
fail() { echo "slurm test: FAILED: $*" >&2; exit 1; }

missing=""
for p in slurm-wlm munge python3; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || fail "missing packages:$missing (run as root to install them)"
  step "installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

S=$(mktemp -d /tmp/vit-slurm.XXXXXX)
W=$S/work
mkdir -p "$S/munge" "$S/ctld" "$S/spool" "$W/logs"
chmod 700 "$S/munge"

stop() {
  rc=$?
  set +e
  [ -n "${SLURM_CONF:-}" ] && scancel --quiet --user=root 2>/dev/null
  for pid in "$S/slurmd.pid" "$S/slurmctld.pid" "$S/munge/munged.pid"; do
    [ -s "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
  done
  sleep 1
  if [ "$rc" != 0 ]; then
    echo "--- slurmctld log"; tail -n 30 "$S/slurmctld.log" 2>/dev/null
    echo "--- slurmd log"; tail -n 30 "$S/slurmd.log" 2>/dev/null
    for f in "$W"/logs/*; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done
  fi
  rm -rf "$S"
  exit "$rc"
}
trap stop EXIT
trap 'exit 1' INT TERM

step "munged"
dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$S/munge/munge.key"
munged --force --socket="$S/munge/socket" --key-file="$S/munge/munge.key" --pid-file="$S/munge/munged.pid" \
  --log-file="$S/munge/munged.log" --seed-file="$S/munge/seed"

step "slurmctld and slurmd"
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024) - 256 }' /proc/meminfo)
cat > "$S/slurm.conf" <<EOF
ClusterName=vit-test
SlurmctldHost=$(hostname)(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge/socket
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=5
NodeName=vitnode NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=vitnode Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$S/slurm.conf"
slurmctld -i
slurmd -N vitnode
i=0
until sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; do
  i=$((i + 1))
  [ "$i" -le 60 ] || fail "the node did not come up idle in 60 s: $(sinfo -N 2>&1)"
  sleep 1
done

step "inputs: fixture images under many names"
mkdir -p "$W/img"
for f in "$src"/tests/data/images/*; do
  for c in $(seq 1 400); do cp "$f" "$W/img/$c-$(basename "$f")"; done
done
find "$W/img" -type f | sort > "$W/list.txt"
model=$src/tests/data/vit-tiny-random/model
"$cli" --model "$model" --files-from "$W/list.txt" --output "$W/whole" --logits 2>/dev/null

# The array script, exactly as docs/scale.md gives it.
sed -n '/^<!-- slurm-array-script -->$/,/^```$/p' "$src/docs/scale.md" | sed '1,2d;$d' > "$W/classify.sbatch"
grep -q '^#SBATCH --array' "$W/classify.sbatch" || fail "no array script found in docs/scale.md"

step "sbatch --array=0-3"
export PATH="$(dirname "$cli"):$PATH"
submit() {
  array=$1
  shift
  sbatch --parsable --array="$array" --cpus-per-task=1 --output="$W/logs/%A_%a.log" \
    --export=ALL,MODEL="$model",LIST="$W/list.txt",OUT="$W/out" "$W/classify.sbatch" --logits --chunk 16 --batch 4 "$@"
}
job=$(submit 0-3)
part1=$W/out/part-00001-of-00004.jsonl
# Cancel task 1 once it has written two chunks (it has ~500 images to do).
i=0
while [ ! -f "$part1" ] || [ "$(wc -l < "$part1")" -lt 32 ]; do
  i=$((i + 1))
  [ "$i" -le 1200 ] || fail "array task 1 wrote no chunk in 60 s"
  sleep 0.05
done
scancel "${job}_1"
wait_job() {
  i=0
  while [ -n "$(squeue -h -j "$1" 2>/dev/null)" ]; do
    i=$((i + 1))
    [ "$i" -le 600 ] || fail "job $1 still queued or running after 300 s"
    sleep 0.5
  done
}
wait_job "$job"
state() { scontrol -o show job "$1" | sed -n 's/.*JobState=\([A-Z_]*\).*ExitCode=\([0-9:]*\).*/\1 \2/p'; }
for t in 0 2 3; do
  [ "$(state "${job}_$t")" = "COMPLETED 0:0" ] || fail "array task $t: $(state "${job}_$t"), not COMPLETED 0:0"
done
case "$(state "${job}_1")" in CANCELLED*) ;; *) fail "array task 1 was not cancelled: $(state "${job}_1")" ;; esac
cp "$part1" "$W/part1-at-cancel.jsonl"

step "resubmit the cancelled task: sbatch --array=1 ... --shard-count 4 (the script passes --resume)"
job2=$(submit 1 --shard-count 4)
wait_job "$job2"
[ "$(state "${job2}_1")" = "COMPLETED 0:0" ] || fail "resubmitted task 1: $(state "${job2}_1")"

step "checking the parts against the unsharded run"
/usr/bin/python3 - "$W" <<'EOF'
import glob, json, sys
W = sys.argv[1]
def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]
whole = {r["image"]: r for r in records(W + "/whole/part-00000-of-00001.jsonl")}
names = [line.rstrip("\n") for line in open(W + "/list.txt")]
assert sorted(whole) == sorted(names), "the unsharded run misses inputs"
parts = sorted(glob.glob(W + "/out/part-*-of-00004.jsonl"))
def shard_of_path(path, n):
    # docs/scale.md: FNV-1a 64 of the path as given, finished with fmix64, mod N
    M = (1 << 64) - 1
    h = 14695981039346656037
    for c in path.encode():
        h = ((h ^ c) * 1099511628211) & M
    h ^= h >> 33; h = (h * 0xff51afd7ed558ccd) & M
    h ^= h >> 33; h = (h * 0xc4ceb93e1a85ec53) & M
    h ^= h >> 33
    return h % n
assert len(parts) == 4, parts
seen, shard_of = set(), {}
for p in parts:
    for r in records(p):
        img = r["image"]
        assert img not in seen, "%s twice (in %s and %s)" % (img, shard_of.get(img), p)
        seen.add(img)
        shard_of[img] = p
        assert p.endswith("/part-%05d-of-00004.jsonl" % shard_of_path(img, 4)), (img, p)
        w = whole[img]
        assert [(x["index"], x["label"]) for x in r["predictions"]] == [(x["index"], x["label"]) for x in w["predictions"]], img
        worst = max(abs(a - b) for a, b in zip(r["logits"], w["logits"]))
        assert len(r["logits"]) == len(w["logits"]) and worst <= 1e-6, (img, worst)
assert seen == set(names), "%d of %d inputs in the parts" % (len(seen), len(names))
before = open(W + "/part1-at-cancel.jsonl").read()
after = open(W + "/out/part-00001-of-00004.jsonl").read()
assert after.startswith(before) and before.endswith("\n"), "records written before the cancel changed"
assert before.count("\n") < after.count("\n"), "the cancel came after task 1 had finished"
sizes = [len(records(p)) for p in parts]
print("slurm test: %d images in 4 disjoint parts %s, equal to the unsharded run; task 1 cancelled after %d records and resumed"
      % (len(seen), sizes, before.count("\n")))
EOF
step "passed"
