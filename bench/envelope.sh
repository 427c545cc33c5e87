#!/usr/bin/env bash
# Kinko's envelope against rage, side by side in one run, on the same files:
# seal/encrypt and open/decrypt of a 1 GiB and a 1 KiB random file, output to /dev/null.
# Prints the median of RUNS runs, throughput, the ratio to rage, and peak RSS.
#
#   bash bench/envelope.sh            # RUNS=5 SIZE_MIB=1024 by default
#
# Installs what it lacks: rage (cargo install), GNU time (Debian `time`).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
WORK=${WORK:-$(mktemp -d /tmp/kinko-bench.XXXXXX)}
trap 'rm -rf "$WORK"' EXIT

if ! command -v rage >/dev/null || ! command -v rage-keygen >/dev/null; then
  echo "installing rage (cargo install rage)..." >&2
  cargo install --locked rage >&2
fi
if [ ! -x /usr/bin/time ]; then
  apt-get update -qq >&2 && apt-get install -y -qq time >&2
fi

cargo build --release -q -p kinko-server
KINKO=$PWD/target/release/kinko

echo "machine: $(nproc) cores, $(uname -m); rage $(rage --version | head -1); files in $WORK" >&2
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/big"
head -c 1024 /dev/urandom > "$WORK/small"

"$KINKO" keygen -o "$WORK/kinko.key" 2>/dev/null
KINKO_R=$(grep -o 'age1[0-9a-z]*' "$WORK/kinko.key" | head -1)
rage-keygen -o "$WORK/rage.key" 2>/dev/null
RAGE_R=$(grep -o 'age1[0-9a-z]*' "$WORK/rage.key" | head -1)

for f in big small; do
  "$KINKO" seal -r "$KINKO_R" -o "$WORK/$f.kinko" "$WORK/$f"
  rage -r "$RAGE_R" -o "$WORK/$f.age" "$WORK/$f"
done

# run LABEL CMD...: runs CMD RUNS times (stdout to /dev/null), records "seconds maxrss_kib"
# per run (wall clock in ns from date; peak RSS from GNU time, whose own overhead is the same
# for every tool).
run() {
  local label=$1; shift
  : > "$WORK/$label.times"
  for _ in $(seq "$RUNS"); do
    local start end
    start=$(date +%s%N)
    /usr/bin/time -f "%M" -o "$WORK/time.out" "$@" > /dev/null
    end=$(date +%s%N)
    echo "$(awk -v ns=$((end - start)) 'BEGIN { printf "%.4f", ns / 1e9 }') $(cat "$WORK/time.out")" >> "$WORK/$label.times"
  done
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for f in big small; do
  # Interleave the tools so that machine noise hits both alike.
  run "kinko-seal-$f" "$KINKO" seal -r "$KINKO_R" -o /dev/null "$WORK/$f"
  run "rage-enc-$f" rage -r "$RAGE_R" -o /dev/null "$WORK/$f"
  run "kinko-open-$f" "$KINKO" open -i "$WORK/kinko.key" "$WORK/$f.kinko"
  run "rage-dec-$f" rage -d -i "$WORK/rage.key" "$WORK/$f.age"
done

printf '\n%-18s %8s %10s %10s %12s\n' "run ($RUNS each)" "size" "median s" "MB/s" "peak RSS MiB"
for f in big small; do
  bytes=$(stat -c %s "$WORK/$f")
  for label in kinko-seal rage-enc kinko-open rage-dec; do
    t=$(cut -d' ' -f1 "$WORK/$label-$f.times" | median)
    rss=$(cut -d' ' -f2 "$WORK/$label-$f.times" | sort -n | tail -1)
    mbps=$(awk -v b="$bytes" -v t="$t" 'BEGIN { if (t > 0) printf "%.0f", b / t / 1e6; else print "-" }')
    printf '%-18s %8s %10s %10s %12.1f\n' "$label" "$f" "$t" "$mbps" "$(awk -v k="$rss" 'BEGIN{print k/1024}')"
    echo "$t" > "$WORK/$label-$f.median"
  done
done

ratio() { awk -v a="$(cat "$WORK/$1.median")" -v b="$(cat "$WORK/$2.median")" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "speed-up over rage, ${SIZE_MIB} MiB (rage time / kinko time): seal $(ratio rage-enc-big kinko-seal-big)x, open $(ratio rage-dec-big kinko-open-big)x"
echo "speed-up over rage, 1 KiB: seal $(ratio rage-enc-small kinko-seal-small)x, open $(ratio rage-dec-small kinko-open-small)x"
