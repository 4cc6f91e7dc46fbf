#!/usr/bin/env bash
# bench/run.sh: load-test Gatehouse on SQLite and on PostgreSQL + Redis.
#
# Usage:
#   bench/run.sh [sqlite] [postgres] [-- LOADGEN FLAGS…]
#
#   bench/run.sh                                  # both backends, all scenarios, 10 s each
#   bench/run.sh postgres -- --scenarios refresh --duration 15s
#   bench/run.sh sqlite -- --json > sqlite.out    # machine-readable report (after a "#" header)
#   bench/run.sh -- --scenarios validate,refresh,introspect,introspect-refresh,login
#
# It builds ./cmd/gatehouse and ./bench/loadgen into a temporary directory.
# For each backend it starts `gatehouse serve` on free loopback ports
# (GATEHOUSE_ENV=test, GATEHOUSE_LOG_LEVEL=warn: logging every request would
# distort the figures), waits for /readyz, runs the load generator (which
# creates its users and OAuth client through the gatehouse CLI with the
# same environment, then measures each scenario between two measurements
# of the bare crypto ceiling it is compared with, just before and just
# after it, and compares it with their mean), and stops the server with
# SIGTERM. SQLite
# lives in a temporary data dir; PostgreSQL gets a fresh database that is
# dropped afterwards, and Redis a unique key prefix whose keys are deleted
# afterwards. On PostgreSQL the load generator also counts transactions
# and table lookups per request from PostgreSQL's statistics, which adds
# an 11 s idle wait per scenario. The machine is shared: run it when it is
# otherwise idle, and look at the "other" CPU figures before trusting a run.
#
# Environment (defaults in brackets):
#   BENCH_PG_URL     PostgreSQL server, no database  [postgres://postgres@127.0.0.1:5432]
#   BENCH_REDIS_URL  Redis                           [redis://127.0.0.1:6379/0]
#   GATEHOUSE_ARGON2_MEMORY_KIB, GATEHOUSE_ARGON2_TIME, GATEHOUSE_ARGON2_THREADS
#                    passed to both server and load generator [19456, 2, 1]
#   BENCH_REV        build the server from this commit (git archive) instead
#                    of the working tree, e.g. BENCH_REV=HEAD
#   BENCH_KEEP_LOGS  set to a directory to keep the server logs there
#   BENCH_PROFILE    set to a directory to record a CPU profile of the server
#                    there (<backend>.pprof, BENCH_PROFILE_SECONDS long from
#                    when the server is ready [45]; read it with go tool pprof)
#   BENCH_GATEHOUSE_ENV  extra settings for server and CLI, space-separated
#                    VAR=value words, e.g. "GATEHOUSE_SIGNING_ALG=ES256"
#                    (the ceilings stay RS256 and Argon2id at the flags' values)
# Any other GATEHOUSE_* variable in the caller's environment is ignored.
#
# Needs go, curl, psql and redis-cli. Exit status: 0 when every scenario ran
# without errors, 3 when some requests failed (figures still printed), other
# non-zero on setup failures.
set -euo pipefail

cd "$(dirname "$0")/.."

backends=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	sqlite | postgres) backends+=("$1") ;;
	--) shift; break ;;
	*) echo "usage: bench/run.sh [sqlite] [postgres] [-- loadgen flags]" >&2; exit 2 ;;
	esac
	shift
done
[[ ${#backends[@]} -gt 0 ]] || backends=(sqlite postgres)
loadgen_args=("$@")

read -r -a extra_env <<<"${BENCH_GATEHOUSE_ENV:-}"
for kv in "${extra_env[@]}"; do
	if [[ ! $kv =~ ^GATEHOUSE_[A-Z0-9_]+= ]]; then
		echo "bench: BENCH_GATEHOUSE_ENV: $kv is not GATEHOUSE_NAME=value" >&2
		exit 2
	fi
done
pg_url=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
redis_url=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
argon2_memory=${GATEHOUSE_ARGON2_MEMORY_KIB:-19456}
argon2_time=${GATEHOUSE_ARGON2_TIME:-2}
argon2_threads=${GATEHOUSE_ARGON2_THREADS:-1}
# Start from a clean GATEHOUSE_* environment: only what this script sets.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^GATEHOUSE_' || true)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
run_id=$(printf %s "${tmp##*.}" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')
server_pid=""
loadgen_pid=""
database=""
redis_prefix=""

redis_cli() {
	redis-cli -u "$redis_url" "$@"
}

stop_server() {
	[[ -n $server_pid ]] || return 0
	local status=0
	kill -TERM "$server_pid" 2>/dev/null || true
	wait "$server_pid" || status=$?
	server_pid=""
	if [[ $status -ne 0 ]]; then
		echo "bench: gatehouse serve exited with status $status after SIGTERM" >&2
	fi
	return "$status"
}

# cleanup_storage drops the benchmark database and deletes the Redis keys.
cleanup_storage() {
	if [[ -n $database ]]; then
		psql -q "$pg_url/postgres" -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null || true
		database=""
	fi
	if [[ -n $redis_prefix ]]; then
		redis_cli --scan --pattern "${redis_prefix}*" | xargs -r redis-cli -u "$redis_url" DEL >/dev/null || true
		redis_prefix=""
	fi
}

cleanup() {
	set +e
	if [[ -n $loadgen_pid ]]; then
		kill -TERM "$loadgen_pid" 2>/dev/null
		wait "$loadgen_pid" 2>/dev/null
	fi
	stop_server
	cleanup_storage
	if [[ -n ${BENCH_KEEP_LOGS:-} ]]; then
		mkdir -p "$BENCH_KEEP_LOGS" && cp "$tmp"/*.log "$BENCH_KEEP_LOGS"/ 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	local port
	for _ in $(seq 50); do
		port=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	echo "bench: no free port found" >&2
	return 1
}

echo "bench: building into $tmp" >&2
if [[ -n ${BENCH_REV:-} ]]; then
	# The server from a commit, exported with git archive (the checkout is
	# not touched); the load generator from the working tree.
	rev=$(git rev-parse --short "$BENCH_REV^{commit}")
	mkdir "$tmp/src"
	git archive "$rev" | tar -x -C "$tmp/src"
	(cd "$tmp/src" && go build -o "$tmp/gatehouse" ./cmd/gatehouse)
	built="commit $rev"
else
	go build -o "$tmp/gatehouse" ./cmd/gatehouse
	built="working tree at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	git diff --quiet HEAD 2>/dev/null || built+=" with uncommitted changes"
fi
go build -o "$tmp/loadgen" ./bench/loadgen

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), nproc $(nproc), $(go version | cut -d' ' -f3-), server built from $built${extra_env[*]:+, with ${extra_env[*]}}"

# run_backend NAME: one server, one load generator run. Sets status.
run_backend() {
	local backend=$1 http_port admin_port base log rc=0 errors profile_pid=""
	http_port=$(free_port)
	admin_port=$(free_port)
	base="http://127.0.0.1:$http_port"
	local genv=(
		GATEHOUSE_ENV=test
		GATEHOUSE_HTTP_ADDR="127.0.0.1:$http_port"
		GATEHOUSE_ADMIN_ADDR="127.0.0.1:$admin_port"
		GATEHOUSE_ISSUER="$base"
		GATEHOUSE_LOG_LEVEL=warn
		GATEHOUSE_DATA_DIR="$tmp/data-$backend"
		GATEHOUSE_ARGON2_MEMORY_KIB="$argon2_memory"
		GATEHOUSE_ARGON2_TIME="$argon2_time"
		GATEHOUSE_ARGON2_THREADS="$argon2_threads"
		"${extra_env[@]}"
	)
	[[ -z ${BENCH_PROFILE:-} ]] || genv+=(GATEHOUSE_ADMIN_PPROF=true)
	local extra=()
	mkdir -p "$tmp/data-$backend"
	if [[ $backend == postgres ]]; then
		database="gatehouse_bench_$run_id"
		psql -q "$pg_url/postgres" -c "CREATE DATABASE \"$database\"" >/dev/null
		redis_prefix="gatehouse-bench-$run_id:"
		genv+=(
			GATEHOUSE_DATABASE_URL="$pg_url/$database?sslmode=disable"
			GATEHOUSE_REDIS_URL="$redis_url"
			GATEHOUSE_REDIS_KEY_PREFIX="$redis_prefix"
		)
		extra=(--pg-url "$pg_url/$database?sslmode=disable")
	fi

	log="$tmp/server-$backend.log"
	env "${genv[@]}" "$tmp/gatehouse" serve >"$log" 2>&1 &
	server_pid=$!
	for _ in $(seq 150); do
		curl -fsS "$base/readyz" >/dev/null 2>&1 && break
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "bench: gatehouse serve ($backend) exited; its log:" >&2
			cat "$log" >&2
			server_pid=""
			status=1
			return
		fi
		sleep 0.2
	done
	curl -fsS "$base/readyz" >/dev/null
	if [[ -n ${BENCH_PROFILE:-} ]]; then
		mkdir -p "$BENCH_PROFILE"
		curl -fsS -o "$BENCH_PROFILE/$backend.pprof" \
			"http://127.0.0.1:$admin_port/debug/pprof/profile?seconds=${BENCH_PROFILE_SECONDS:-45}" &
		profile_pid=$!
	fi

	echo
	echo "## $backend"
	echo
	# In the background, so that a signal to this script is handled at once
	# (bash runs traps only between foreground commands).
	env "${genv[@]}" "$tmp/loadgen" --url "$base" --gatehouse "$tmp/gatehouse" --server-pid "$server_pid" \
		--argon2-memory-kib "$argon2_memory" --argon2-time "$argon2_time" --argon2-threads "$argon2_threads" \
		"${extra[@]}" "${loadgen_args[@]}" &
	loadgen_pid=$!
	wait "$loadgen_pid" || rc=$?
	loadgen_pid=""

	# The profile ends BENCH_PROFILE_SECONDS after the start, whether or not
	# the load generator finished first.
	[[ -z $profile_pid ]] || wait "$profile_pid" || echo "bench: the CPU profile failed" >&2
	stop_server || rc=1
	errors=$(grep -c '"level":"ERROR"' "$log" || true)
	if [[ $errors -gt 0 ]]; then
		echo "bench: the $backend server logged $errors errors; the first ones:" >&2
		grep '"level":"ERROR"' "$log" | head -5 >&2
	fi
	cleanup_storage
	if [[ $rc -ne 0 && $status -eq 0 ]]; then
		status=$rc
	fi
}

status=0
for backend in "${backends[@]}"; do
	run_backend "$backend"
done
exit "$status"
