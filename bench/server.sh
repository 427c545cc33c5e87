#!/usr/bin/env bash
# `kinko serve` against nginx (static files, plaintext) and rustypaste (a plain file-sharing
# server), side by side in one run, on the same machine and the same files:
#
#   - upload SIZE_MIB (1 GiB): Kinko (seals at rest) vs rustypaste (multipart), curl;
#   - download SIZE_MIB: Kinko's link download vs nginx vs rustypaste, curl;
#   - 1 KiB link downloads with 64 connections (wrk): Kinko with every check and the audit log
#     on (each GET is a counted, audited download) vs nginx vs rustypaste.
#
# Prints medians of RUNS runs (WRK_RUNS for wrk), MB/s, req/s, p99, peak RSS of each server
# (VmHWM, reset per phase), and the ratios against the targets. Everything listens on
# 127.0.0.1 only, and everything it starts is stopped and removed on exit.
#
#   bash bench/server.sh     # RUNS=5 SIZE_MIB=1024 WRK_RUNS=3 WRK_SECONDS=10 WRK_CONNS=64
#                            # WRK_WARMUP=5 (seconds of unrecorded wrk per server first; 0: none)
#
# PHASES (default "upload download small") picks the tests, e.g. PHASES=small for the 1 KiB test
# alone; a download without the upload phase uploads the file once first.
# DIAG=1 (default) adds a diagnostic row that is not part of the targets: Kinko with
# `[vault] access_durability = "buffered"` (no fsync per counted download).
# Installs what it lacks: nginx, wrk, curl (Debian), rustypaste (cargo install).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
WRK_RUNS=${WRK_RUNS:-3}
WRK_SECONDS=${WRK_SECONDS:-10}
WRK_CONNS=${WRK_CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
WRK_WARMUP=${WRK_WARMUP:-5}
DIAG=${DIAG:-1}
PHASES=${PHASES:-upload download small}
has() { [[ " $PHASES " == *" $1 "* ]]; }
WORK=$(mktemp -d /tmp/kinko-server-bench.XXXXXX)

PIDS=()
RP_INSTALL_PID=
cleanup() {
  local p
  [ -n "$RP_INSTALL_PID" ] && kill "$RP_INSTALL_PID" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Tools. rustypaste takes minutes to build: start it first, in the background.
export DEBIAN_FRONTEND=noninteractive
if ! command -v rustypaste >/dev/null; then
  say "installing rustypaste (cargo install --locked rustypaste) in the background..."
  cargo install --locked rustypaste > "$WORK/rustypaste-install.log" 2>&1 &
  RP_INSTALL_PID=$!
fi
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  # On Debian the package does not start a system nginx where policy-rc.d forbids it
  # (containers); elsewhere the system nginx may start on port 80, which this script never uses.
  say "installing ${missing[*]} (apt-get)..."
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    > "$WORK/apt.log" 2>&1 || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

say "building kinko (cargo build --release -p kinko-server)..."
cargo build --release -q -p kinko-server
# A private copy: a shared CARGO_TARGET_DIR may get another checkout's build meanwhile.
cp "${CARGO_TARGET_DIR:-$PWD/target}/release/kinko" "$WORK/kinko" || die "no kinko binary"
KINKO=$WORK/kinko

if [ -n "$RP_INSTALL_PID" ]; then
  say "waiting for the rustypaste build..."
  rc=0; wait "$RP_INSTALL_PID" || rc=$?
  RP_INSTALL_PID=
  [ "$rc" = 0 ] || { tail -n 30 "$WORK/rustypaste-install.log" >&2; die "cargo install rustypaste failed"; }
fi
command -v rustypaste >/dev/null || die "rustypaste is not on PATH (is ~/.cargo/bin in PATH?)"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Helpers.

# free_port: a TCP port nothing listens on (checked against /proc/net/tcp and tcp6).
free_port() {
  local p hex
  for _ in $(seq 200); do
    p=$(( (RANDOM << 15 | RANDOM) % 30000 + 20000 ))
    hex=$(printf ':%04X ' "$p")
    if ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{print $2" "}' | grep -q "$hex"; then
      echo "$p"; return 0
    fi
  done
  die "no free port found"
}

# wait_http URL PID: until URL answers (any status), or the process died, or 60 s passed.
wait_http() {
  for _ in $(seq 600); do
    kill -0 "$2" 2>/dev/null || return 1
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  return 1
}

# reset_peak PID...: restarts the kernel's peak-RSS (VmHWM) counter of each process.
reset_peak() {
  local p
  for p in "$@"; do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || true; done
}
# peak_mib PID...: the largest VmHWM among the processes, in MiB.
peak_mib() {
  local p
  for p in "$@"; do awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || true; done |
    sort -n | tail -1 | awk '{printf "%.1f", $1 / 1024}'
}
nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); }
# cpu_ticks PID...: user + system clock ticks used so far by the processes (all threads).
cpu_ticks() {
  local p t=0
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}

# ticks_ms TICKS: clock ticks in milliseconds.
ticks_ms() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t / hz * 1000 }'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }
# check VALUE OP TARGET: "met" or "MISSED".
check() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { if (v == "-") { print "n/a"; exit } ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "met" : "MISSED" }'; }
# check_ratio A B OP TARGET: checks A / B unrounded (a ratio printed as 0.33 may be 1/3 or more).
check_ratio() { awk -v a="$1" -v b="$2" -v t="$4" -v op="$3" 'BEGIN { if (a == "-" || b == "-" || b <= 0) { print "n/a"; exit } v = a / b; ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "met" : "MISSED" }'; }

# ---------------------------------------------------------------------------------------------
# The files, shared by all three servers.
mkdir -p "$WORK/www"
chmod 755 "$WORK" "$WORK/www"   # nginx's workers may run as another user
if has upload || has download; then
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/www/big.bin"
else
  : > "$WORK/www/big.bin"
fi
head -c 1024 /dev/urandom > "$WORK/www/small.bin"
BIG_BYTES=$(stat -c %s "$WORK/www/big.bin")
BIG_SUM=$(sha256sum < "$WORK/www/big.bin" | cut -d' ' -f1)

# ---------------------------------------------------------------------------------------------
# Kinko: a --dev server with a config that only lifts the per-address link rate limit.
# start_kinko NAME DURABILITY: sets KINKO_PID_<NAME>, KINKO_URL_<NAME>, KINKO_TOKEN_<NAME>.
start_kinko() {
  local name=$1 durability=$2 dir="$WORK/kinko-$1"
  mkdir -p "$dir"; chmod 700 "$dir"
  : > "$dir/stdout"
  cat > "$dir/kinko.toml" <<EOF
[limits]
# 0 disables the per-address link limit (default 120/min): every request of this benchmark
# comes from 127.0.0.1 and would otherwise be refused with 429.
link_requests_per_minute = 0

[vault]
access_durability = "$durability"
EOF
  KINKO_LOG=warn "$KINKO" serve --dev --listen "127.0.0.1:$(free_port)" \
    --data-dir "$dir/data" --config "$dir/kinko.toml" > "$dir/stdout" 2> "$dir/stderr" &
  local pid=$!
  PIDS+=("$pid")
  local url="" token=""
  for _ in $(seq 600); do
    url=$(sed -n 's/^ *URL: *//p' "$dir/stdout")
    token=$(sed -n 's/^ *Admin token: *//p' "$dir/stdout")
    [ -n "$url" ] && [ -n "$token" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/stderr" >&2; die "kinko serve exited"; }
    sleep 0.1
  done
  [ -n "$url" ] && [ -n "$token" ] || die "kinko serve printed no URL and admin token"
  wait_http "$url/healthz" "$pid" || die "kinko serve does not answer"
  printf -v "KINKO_PID_$name" '%s' "$pid"
  printf -v "KINKO_URL_$name" '%s' "$url"
  printf -v "KINKO_TOKEN_$name" '%s' "$token"
}

# kinko_upload URL TOKEN FILE NAME: uploads, prints "file_id seconds".
kinko_upload() {
  local out
  out=$(curl -sS -T "$3" -X POST -H "Authorization: Bearer $2" -o "$WORK/upload.json" \
    -w '%{http_code} %{time_total}' "$1/api/v1/files?name=$4")
  [ "${out%% *}" = 201 ] || die "kinko upload: HTTP ${out%% *}: $(cat "$WORK/upload.json")"
  echo "$(grep -o '"id":"[0-9a-f]*"' "$WORK/upload.json" | head -1 | cut -d'"' -f4) ${out#* }"
}
# kinko_share URL TOKEN FILE_ID: creates a link share (1 day, unlimited downloads), prints
# "share_id secret".
kinko_share() {
  local link
  link=$(curl -sS -X POST -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    -d '{"expires_in": 86400}' "$1/api/v1/files/$3/shares" | grep -o '"link":"[^"]*"' | cut -d'"' -f4)
  [ -n "$link" ] || die "kinko share creation failed"
  local base=${link%%#*}
  echo "${base##*/} ${link#*#}"
}
kinko_delete() {
  curl -sS -o /dev/null -X DELETE -H "Authorization: Bearer $2" "$1/api/v1/files/$3"
}

start_kinko main sync
KURL=$KINKO_URL_main KTOKEN=$KINKO_TOKEN_main KPID=$KINKO_PID_main

# ---------------------------------------------------------------------------------------------
# nginx: static files from $WORK/www, sendfile on, no access log, in the foreground.
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx/tmp"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
  }
}
EOF
"$NGINX" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2> "$WORK/nginx/stderr" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
NURL=http://127.0.0.1:$NGINX_PORT
wait_http "$NURL/small.bin" "$NGINX_PID" || { cat "$WORK/nginx/stderr" "$WORK/nginx/error.log" >&2; die "nginx does not answer"; }

# ---------------------------------------------------------------------------------------------
# rustypaste: original file names, an upload limit above SIZE_MIB, request logs off.
RP_PORT=$(free_port)
mkdir -p "$WORK/rustypaste/upload"
cat > "$WORK/rustypaste/config.toml" <<EOF
[server]
address = "127.0.0.1:$RP_PORT"
url = "http://127.0.0.1:$RP_PORT"
max_content_length = "$((SIZE_MIB * 2 + 64))MiB"
upload_path = "$WORK/rustypaste/upload"
timeout = "10min"

[paste]
default_extension = "bin"
duplicate_files = true
EOF
(cd "$WORK/rustypaste" && CONFIG="$WORK/rustypaste/config.toml" RUST_LOG=warn exec rustypaste) \
  > "$WORK/rustypaste/stdout" 2>&1 &
RP_PID=$!
PIDS+=("$RP_PID")
RURL=http://127.0.0.1:$RP_PORT
wait_http "$RURL/" "$RP_PID" || { cat "$WORK/rustypaste/stdout" >&2; die "rustypaste does not answer"; }

# rp_upload FILE: prints "url seconds".
rp_upload() {
  local out
  out=$(curl -sS -F "file=@$1" -o "$WORK/rp-upload.txt" -w '%{http_code} %{time_total}' "$RURL/")
  [ "${out%% *}" = 200 ] || die "rustypaste upload: HTTP ${out%% *}: $(cat "$WORK/rp-upload.txt")"
  echo "$(head -1 "$WORK/rp-upload.txt" | tr -d '\r\n') ${out#* }"
}

say "machine: $(nproc) cores, $(uname -m); load average at start: $LOAD_START"
say "$("$KINKO" --version | head -1); $("$NGINX" -v 2>&1); $(cargo install --list 2>/dev/null | grep -o "^rustypaste v[0-9.]*" || echo rustypaste); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
say "files in $WORK; Kinko: link_requests_per_minute = 0 (the per-address link limit is off:"
say "  every request comes from 127.0.0.1), KINKO_LOG=warn; rustypaste: RUST_LOG=warn; nginx: access_log off"

# ---------------------------------------------------------------------------------------------
# 1. Uploads (Kinko vs rustypaste), interleaved. Each stored copy is deleted after its run.
UP_RUNS=0
if has upload; then UP_RUNS=$RUNS; elif has download; then UP_RUNS=1; fi
[ "$UP_RUNS" -gt 0 ] && say "upload ${SIZE_MIB} MiB x $UP_RUNS..."
: > "$WORK/up-kinko"; : > "$WORK/up-rp"; : > "$WORK/up-disk"
reset_peak "$KPID" "$RP_PID"
for i in $(seq "$UP_RUNS"); do
  c0=$(cpu_ticks "$KPID")
  _out=$(kinko_upload "$KURL" "$KTOKEN" "$WORK/www/big.bin" "big-$i.bin"); read -r id secs <<< "$_out"
  echo "$secs $(ticks_ms $(($(cpu_ticks "$KPID") - c0)))" >> "$WORK/up-kinko"
  if [ "$i" -lt "$UP_RUNS" ]; then kinko_delete "$KURL" "$KTOKEN" "$id"; else BIG_ID=$id; fi
  c0=$(cpu_ticks "$RP_PID")
  _out=$(rp_upload "$WORK/www/big.bin"); read -r url secs <<< "$_out"
  echo "$secs $(ticks_ms $(($(cpu_ticks "$RP_PID") - c0)))" >> "$WORK/up-rp"
  if [ "$i" -lt "$UP_RUNS" ]; then rm -f "$WORK/rustypaste/upload/big.bin"; else RP_BIG_URL=$url; fi
  # Reference: the same bytes written durably (Kinko fsyncs every upload before answering 201;
  # rustypaste never fsyncs).
  t0=$(date +%s%N)
  dd if="$WORK/www/big.bin" of="$WORK/disk.bin" bs=1M conv=fdatasync status=none
  t1=$(date +%s%N)
  rm -f "$WORK/disk.bin"
  awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.4f\n", ns / 1e9 }' >> "$WORK/up-disk"
done
PEAK_UP_KINKO=$(peak_mib "$KPID"); PEAK_UP_RP=$(peak_mib "$RP_PID")
if ! has upload; then
  : > "$WORK/up-kinko"; : > "$WORK/up-rp"; : > "$WORK/up-disk"; PEAK_UP_KINKO=-; PEAK_UP_RP=-
fi

# ---------------------------------------------------------------------------------------------
# 2. Downloads of the same file: Kinko's link download (a counted, audited download each time),
# nginx, rustypaste. Every server's bytes are checked once first.
: > "$WORK/down-kinko"; : > "$WORK/down-nginx"; : > "$WORK/down-rp"
PEAK_DOWN_KINKO=-; PEAK_DOWN_NGINX=-; PEAK_DOWN_RP=-
if has download; then
  _out=$(kinko_share "$KURL" "$KTOKEN" "$BIG_ID"); read -r BIG_SHARE BIG_SECRET <<< "$_out"
  KBIG=(-H "Kinko-Link-Secret: $BIG_SECRET" "$KURL/api/v1/links/$BIG_SHARE/content")
  [ "$(curl -sS "${KBIG[@]}" | sha256sum | cut -d' ' -f1)" = "$BIG_SUM" ] || die "kinko returned other bytes"
  [ "$(curl -sS "$NURL/big.bin" | sha256sum | cut -d' ' -f1)" = "$BIG_SUM" ] || die "nginx returned other bytes"
  [ "$(curl -sS "$RP_BIG_URL" | sha256sum | cut -d' ' -f1)" = "$BIG_SUM" ] || die "rustypaste returned other bytes"

  # get LABEL "PID..." CURL_ARGS...: one timed download to /dev/null; appends "seconds
  # server_cpu_ms" to $WORK/LABEL.
  get() {
    local label=$1 pids=$2 out c0 code secs size; shift 2
    c0=$(cpu_ticks $pids)
    out=$(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}' "$@")
    read -r code secs size <<< "$out"
    [ "$code" = 200 ] && [ "$size" = "$BIG_BYTES" ] || die "$label download: HTTP $code, $size bytes"
    echo "$secs $(ticks_ms $(($(cpu_ticks $pids) - c0)))" >> "$WORK/$label"
  }
  say "download ${SIZE_MIB} MiB x $RUNS..."
  reset_peak "$KPID" "$RP_PID" $(nginx_pids)
  for _ in $(seq "$RUNS"); do
    get down-kinko "$KPID" "${KBIG[@]}"
    get down-nginx "$(nginx_pids)" "$NURL/big.bin"
    get down-rp "$RP_PID" "$RP_BIG_URL"
  done
  PEAK_DOWN_KINKO=$(peak_mib "$KPID"); PEAK_DOWN_NGINX=$(peak_mib $(nginx_pids)); PEAK_DOWN_RP=$(peak_mib "$RP_PID")
fi

# ---------------------------------------------------------------------------------------------
# 3. 1 KiB downloads with wrk. Kinko: GET /api/v1/links/{share}/content with the link secret
# header, no ticket: each request is a full link check and a counted, audited download.
# wrk_run LABEL URL LUA|- PID...: appends "req_per_s p99_ms server_cpu_ms_per_request" to
# $WORK/LABEL (CPU: user + system time of the server processes during the run).
wrk_run() {
  local label=$1 url=$2 lua=$3 out; shift 3
  local args=(-t "$WRK_THREADS" -c "$WRK_CONNS" -d "${WRK_SECONDS}s" --latency)
  [ "$lua" != - ] && args+=(-s "$lua")
  local cpu0 cpu1
  cpu0=$(cpu_ticks "$@")
  out=$(wrk "${args[@]}" "$url")
  cpu1=$(cpu_ticks "$@")
  echo "$out" > "$WORK/$label.last"
  if grep -q 'Non-2xx or 3xx responses' <<< "$out"; then
    echo "$out" >&2; die "$label: wrk saw error answers"
  fi
  local rps p99 n
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<< "$out")
  n=$(awk '/ requests in / {print $1}' <<< "$out")
  # "     99%    3.21ms" -> milliseconds
  p99=$(awk '$1 == "99%" { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v);
      if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000;
      printf "%.2f", v }' <<< "$out")
  echo "$rps $p99 $(awk -v t=$((cpu1 - cpu0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { if (n > 0) printf "%.3f", t / hz * 1000 / n; else print "-" }')" >> "$WORK/$label"
}

# kinko_small NAME: uploads small.bin to Kinko server NAME, shares it, writes the wrk script.
kinko_small() {
  local url_var=KINKO_URL_$1 tok_var=KINKO_TOKEN_$1 id secs share secret code
  _out=$(kinko_upload "${!url_var}" "${!tok_var}" "$WORK/www/small.bin" small.bin); read -r id secs <<< "$_out"
  _out=$(kinko_share "${!url_var}" "${!tok_var}" "$id"); read -r share secret <<< "$_out"
  code=$(curl -sS -o "$WORK/small.check" -w '%{http_code}' -H "Kinko-Link-Secret: $secret" \
    "${!url_var}/api/v1/links/$share/content")
  [ "$code" = 200 ] && cmp -s "$WORK/small.check" "$WORK/www/small.bin" || die "kinko small download: HTTP $code"
  printf 'wrk.method = "GET"\nwrk.headers["Kinko-Link-Secret"] = "%s"\n' "$secret" > "$WORK/kinko-$1.lua"
  echo "${!url_var}/api/v1/links/$share/content"
}
: > "$WORK/wrk-kinko"; : > "$WORK/wrk-nginx"; : > "$WORK/wrk-rp"; : > "$WORK/wrk-kinkob"
PEAK_WRK_KINKO=-; PEAK_WRK_NGINX=-; PEAK_WRK_RP=-; PEAK_WRK_KINKOB=-
if has small; then
  KSMALL=$(kinko_small main)
  _out=$(rp_upload "$WORK/www/small.bin"); read -r RP_SMALL_URL _ <<< "$_out"
  cmp -s <(curl -sS "$RP_SMALL_URL") "$WORK/www/small.bin" || die "rustypaste small download differs"
  cmp -s <(curl -sS "$NURL/small.bin") "$WORK/www/small.bin" || die "nginx small download differs"
  if [ "$DIAG" = 1 ]; then
    start_kinko buffered buffered
    KBSMALL=$(kinko_small buffered)
  fi

  say "1 KiB downloads, wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECONDS}s x $WRK_RUNS..."
  if [ "$WRK_WARMUP" -gt 0 ]; then
    # Not recorded: every server gets the same warm-up (caches, allocator, connection setup).
    say "  warm-up, ${WRK_WARMUP}s each..."
    warm=(-t "$WRK_THREADS" -c "$WRK_CONNS" -d "${WRK_WARMUP}s")
    wrk "${warm[@]}" -s "$WORK/kinko-main.lua" "$KSMALL" > /dev/null
    wrk "${warm[@]}" "$NURL/small.bin" > /dev/null
    wrk "${warm[@]}" "$RP_SMALL_URL" > /dev/null
    [ "$DIAG" = 1 ] && wrk "${warm[@]}" -s "$WORK/kinko-buffered.lua" "$KBSMALL" > /dev/null
  fi
  reset_peak "$KPID" "$RP_PID" $(nginx_pids)
  for _ in $(seq "$WRK_RUNS"); do
    wrk_run wrk-kinko "$KSMALL" "$WORK/kinko-main.lua" "$KPID"
    wrk_run wrk-nginx "$NURL/small.bin" - $(nginx_pids)
    wrk_run wrk-rp "$RP_SMALL_URL" - "$RP_PID"
    [ "$DIAG" = 1 ] && wrk_run wrk-kinkob "$KBSMALL" "$WORK/kinko-buffered.lua" "$KINKO_PID_buffered"
  done
  PEAK_WRK_KINKO=$(peak_mib "$KPID"); PEAK_WRK_NGINX=$(peak_mib $(nginx_pids)); PEAK_WRK_RP=$(peak_mib "$RP_PID")
  [ "$DIAG" = 1 ] && PEAK_WRK_KINKOB=$(peak_mib "$KINKO_PID_buffered")
fi

# The audit log saw every one of those downloads: the server's own count of link answers.
KINKO_LINK_200=$(curl -sS "$KURL/metrics" | awk '/^kinko_http_requests_total/ && /links\/\{share\}\/content/ && /status="200"/ {s += $NF} END {print s + 0}')

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Results.
mbps() { local t; t=$(cut -d' ' -f1 "$1" | median); awk -v b="$BIG_BYTES" -v t="$t" 'BEGIN { if (t > 0) printf "%.0f", b / t / 1e6; else print "-" }'; }
col() { cut -d' ' -f"$2" "$1" | median; }

UP_K=$(mbps "$WORK/up-kinko"); UP_R=$(mbps "$WORK/up-rp"); UP_D=$(mbps "$WORK/up-disk")
DN_K=$(mbps "$WORK/down-kinko"); DN_N=$(mbps "$WORK/down-nginx"); DN_R=$(mbps "$WORK/down-rp")
RPS_K=$(col "$WORK/wrk-kinko" 1); RPS_N=$(col "$WORK/wrk-nginx" 1); RPS_R=$(col "$WORK/wrk-rp" 1)
P99_K=$(col "$WORK/wrk-kinko" 2); P99_N=$(col "$WORK/wrk-nginx" 2); P99_R=$(col "$WORK/wrk-rp" 2)
CPU_K=$(col "$WORK/wrk-kinko" 3); CPU_N=$(col "$WORK/wrk-nginx" 3); CPU_R=$(col "$WORK/wrk-rp" 3)
RPS_KB=-; P99_KB=-; CPU_KB=-
if [ "$DIAG" = 1 ]; then
  RPS_KB=$(col "$WORK/wrk-kinkob" 1); P99_KB=$(col "$WORK/wrk-kinkob" 2); CPU_KB=$(col "$WORK/wrk-kinkob" 3)
fi

echo
echo "bench/server.sh: RUNS=$RUNS SIZE_MIB=$SIZE_MIB WRK_RUNS=$WRK_RUNS WRK_SECONDS=$WRK_SECONDS WRK_CONNS=$WRK_CONNS WRK_THREADS=$WRK_THREADS WRK_WARMUP=$WRK_WARMUP"
echo "machine: $(nproc) cores; load average (1/5/15 min) at start: $LOAD_START, at end: $LOAD_END (includes this run)"
row() { printf '%-30s %-15s %12s %9s %12s %13s\n' "$@"; }
echo
row "test (median)" server "MB/s, req/s" "p99 ms" "CPU ms/req" "peak RSS MiB"
row "upload ${SIZE_MIB} MiB" kinko "$UP_K" "" "$(col "$WORK/up-kinko" 2)" "$PEAK_UP_KINKO"
row "" rustypaste "$UP_R" "" "$(col "$WORK/up-rp" 2)" "$PEAK_UP_RP"
row "  reference, no server:" "dd fdatasync" "$UP_D" "" "" ""
row "download ${SIZE_MIB} MiB" "kinko (link)" "$DN_K" "" "$(col "$WORK/down-kinko" 2)" "$PEAK_DOWN_KINKO"
row "" nginx "$DN_N" "" "$(col "$WORK/down-nginx" 2)" "$PEAK_DOWN_NGINX"
row "" rustypaste "$DN_R" "" "$(col "$WORK/down-rp" 2)" "$PEAK_DOWN_RP"
row "1 KiB, $WRK_CONNS connections" "kinko (link)" "$RPS_K" "$P99_K" "$CPU_K" "$PEAK_WRK_KINKO"
row "" nginx "$RPS_N" "$P99_N" "$CPU_N" "$PEAK_WRK_NGINX"
row "" rustypaste "$RPS_R" "$P99_R" "$CPU_R" "$PEAK_WRK_RP"
if [ "$DIAG" = 1 ]; then
  row "  diagnostic, no target:" "kinko buffered" "$RPS_KB" "$P99_KB" "$CPU_KB" "$PEAK_WRK_KINKOB"
fi
echo "(CPU ms/req: user + system time of the server per request, a whole ${SIZE_MIB} MiB transfer for the"
echo " big files, the client's excluded; peak RSS: VmHWM of the server process, reset before each"
echo " phase; nginx: its largest process)"
echo "(kinko answered $KINKO_LINK_200 counted, audited link downloads in total)"

R_UP=$(div "$UP_K" "$UP_R"); R_DN=$(div "$DN_K" "$DN_N")
R_RPS_N=$(div "$RPS_K" "$RPS_N"); R_RPS_R=$(div "$RPS_K" "$RPS_R")
echo
echo "targets:"
printf '  upload:    kinko / rustypaste = %sx (target >= 5x): %s; kinko peak RSS %s MiB (target <= 64): %s\n' \
  "$R_UP" "$(check_ratio "$UP_K" "$UP_R" '>=' 5)" "$PEAK_UP_KINKO" "$(check "$PEAK_UP_KINKO" '<=' 64)"
# The upload target is a multiple of a peer that never fsyncs: put it next to what the disk
# itself writes durably in the same run.
if has upload && [ "$UP_D" != "-" ] && [ -n "$UP_D" ]; then
  awk -v k="$UP_K" -v r="$UP_R" -v d="$UP_D" 'BEGIN { if (d > 0)
    printf "             (5x rustypaste is %.0f MB/s; dd with fdatasync, no server, wrote %.0f MB/s; kinko reached %.2fx of dd)\n", 5 * r, d, k / d }'
fi
printf '  download:  kinko / nginx = %sx (target >= 0.8x): %s\n' "$R_DN" "$(check_ratio "$DN_K" "$DN_N" '>=' 0.8)"
printf '  1 KiB:     kinko / nginx = %sx (target >= 0.33x): %s; kinko / rustypaste = %sx (target >= 10x): %s; kinko p99 %s ms (target <= 10): %s\n' \
  "$R_RPS_N" "$(check_ratio "$RPS_K" "$RPS_N" '>=' 0.333333333)" "$R_RPS_R" "$(check_ratio "$RPS_K" "$RPS_R" '>=' 10)" "$P99_K" "$(check "$P99_K" '<=' 10)"
# The load at the end includes this benchmark's own work; the one at the start is other work.
awk -v a="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN { if (a > n / 2)
  print "\nnote: the machine was busy before the run (1-minute load " a " on " n " cores); rerun when it is quieter for clean numbers." }'
