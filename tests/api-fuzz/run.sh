#!/bin/sh
# Property-based tests of the HTTP API generated from its OpenAPI document: Schemathesis reads
# the /openapi.json a real `kinko serve --dev` serves (docs/openapi.json), sends it requests
# made from the document (valid and deliberately invalid ones, and sequences that follow the
# document's links), and checks every answer:
#   - no 5xx, whatever the input;
#   - every status code, content type, header and JSON body is one the document declares;
#   - input the document forbids is refused (a 4xx);
#   - answers hold up across operations (a deleted resource stays gone, a resource that was
#     just created can be read, an operation that needs a token refuses a request without).
#
# usage: tests/api-fuzz/run.sh KINKO_BINARY [WORK_DIR]
#   WORK_DIR holds the venv (venv/), the server's data and the reports (reports/); default: a
#   new temporary directory, removed afterwards. A venv already in WORK_DIR is reused.
# Environment: SEED (default: a fixed seed, so that CI explores the same inputs each run; give
#   SEED=random for a new one), MAX_EXAMPLES per operation and phase (default 50), MAX_TIME
#   (seconds per run; default 150).
#
# The server listens on 127.0.0.1 only. Its rate limits on link and sign-in failures are lifted
# (every request comes from 127.0.0.1 and would soon be answered 429).
set -eu
export PYTHONDONTWRITEBYTECODE=1
[ $# -ge 1 ] || { echo "usage: $0 KINKO_BINARY [WORK_DIR]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
kinko=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -x "$kinko" ] || { echo "$0: $kinko is not an executable" >&2; exit 2; }
if [ $# -ge 2 ]; then
  mkdir -p "$2"; dir=$(cd "$2" && pwd); keep=1
else
  dir=$(mktemp -d); keep=
fi
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  [ -n "$keep" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x "$dir/venv/bin/schemathesis" ]; then
  python3 -m venv "$dir/venv"
fi
# Wheels only: no compiler needed, and no build that differs by machine.
"$dir/venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
  -r "$here/requirements.txt"

seed=${SEED:-20261125}
[ "$seed" = random ] && seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
rm -rf "$dir/data" "$dir/reports"; mkdir -p "$dir/reports"
cat > "$dir/kinko.toml" <<EOF
[limits]
link_requests_per_minute = 0
auth_failures_per_minute = 0
EOF
KINKO_LOG=warn "$kinko" serve --dev --listen 127.0.0.1:0 --data-dir "$dir/data" \
  --config "$dir/kinko.toml" > "$dir/server.out" 2> "$dir/server.err" &
server=$!
url= token=
for _ in $(seq 300); do
  url=$(sed -n 's/^ *URL: *//p' "$dir/server.out")
  token=$(sed -n 's/^ *Admin token: *//p' "$dir/server.out")
  [ -n "$url" ] && [ -n "$token" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$dir/server.err" >&2; echo "$0: kinko serve exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] && [ -n "$token" ] || { echo "$0: kinko serve printed no URL and token" >&2; exit 1; }

# st NAME ARGS...: one Schemathesis run against the server, its JUnit report in reports/
# (with the configuration file $config, when set).
# Every check but positive_data_acceptance, which expects every request the document allows to
# succeed: some rules cannot be written in JSON Schema (an age recipient's checksum, "the last
# enabled admin cannot be disabled", a share of a file that another request deleted), and their
# refusals are the API working as documented in docs/API.md.
st() {
  name=$1; shift
  echo "== schemathesis: $name (seed $seed)"
  # From WORK_DIR, where Schemathesis and Hypothesis keep their caches; with no example
  # database, so that a seed gives the same run on every machine.
  (cd "$dir" && "$dir/venv/bin/schemathesis" ${config:+--config-file "$config"} run "$url/openapi.json" \
    -H "Authorization: Bearer $token" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --seed "$seed" --workers 1 --no-color \
    --max-examples "${MAX_EXAMPLES:-50}" --max-time "${MAX_TIME:-150}" \
    --request-timeout 10 \
    --generation-database none \
    --report junit --report-junit-path "$dir/reports/$name.xml" \
    "$@")
}
# Operations that change the whole server are tested last, alone: once Schemathesis has created
# a second admin, disabling the first one (whose token every request carries) succeeds, and
# every later request would be refused as unauthenticated; a freeze makes every link dead; a
# retention of one second has every file swept as soon as it is uploaded.
global='^/api/v1/admin/(users/\{user\}/disable|freeze|retention)$'
status=0
config=
st api --exclude-path-regex "$global" || status=1
# The link operations again, with a real share: the document cannot link a share's creation
# to them (the secret travels in the link's fragment), so above they only ever meet unknown
# shares. Here the share id and secret are fixed and everything else is generated.
seeded=$("$dir/venv/bin/python" "$here/seed.py" "$url" "$token")
share=${seeded%% *} seeded=${seeded#* }
secret=${seeded%% *} member=${seeded#* }
config=$dir/links.toml
cat > "$config" <<EOF
[[operations]]
include-path-regex = "^/(s|api/v1/links)/"
parameters = { "path.share" = "$share", "header.Kinko-Link-Secret" = "$secret" }
EOF
# These two passes select no linked pair of operations: no stateful phase.
st links --include-path-regex '^/(s|api/v1/links)/' --phases examples,coverage,fuzzing || status=1
# The user to disable is a seeded member: random ids only ever meet 404.
config=$dir/server-wide.toml
cat > "$config" <<EOF
[[operations]]
include-path-regex = "^/api/v1/admin/users/"
parameters = { "path.user" = "$member" }
EOF
st server-wide --include-path-regex "$global" --phases examples,coverage,fuzzing || status=1
if ! kill -0 "$server" 2>/dev/null; then
  echo "$0: the server died during the run" >&2; cat "$dir/server.err" >&2; status=1
fi
[ $status -eq 0 ] && echo "api fuzz: all OK" || echo "api fuzz: FAILED (reports in $dir/reports when WORK_DIR is given)" >&2
exit $status
