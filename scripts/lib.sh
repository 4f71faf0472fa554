# Shared by the load-test and browser-test scripts: `source scripts/lib.sh`.

# Installs Debian packages whose commands are missing: `need_debian CMD PKG`.
need_debian() {
  if ! command -v "$1" >/dev/null; then
    echo "Installing $2 from Debian..."
    (apt-get install -y -q "$2" || (apt-get update -q && apt-get install -y -q "$2")) >/dev/null
  fi
}

# Makes the virtualenv $1 hold the PyPI packages after $2 unless `python -c
# "$2"` (an import check) already passes; under a lock, so parallel tests
# install once: `install_venv VENV CHECK PACKAGE...`.
install_venv() {
  local venv="$1" check="$2"
  shift 2
  mkdir -p "$(dirname "$venv")"
  (
    flock 9
    if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    fi
  ) 9>"$venv.lock"
}

# Starts the real `api` on 127.0.0.1:0 over output $1 with log file $2 and
# extra arguments after them; sets API_PID and API_ADDR once it answers.
start_api() {
  local output="$1" log="$2" addr=""
  shift 2
  "${CARGO_TARGET_DIR:-target}/debug/api" --config config/minutely.toml --output "$output" \
    --bind 127.0.0.1:0 "$@" >"$log" &
  API_PID=$!
  for _ in $(seq 600); do
    addr="$(sed -n 's|^Listening on http://||p' "$log")"
    if [ -n "$addr" ] && curl -s -o /dev/null "http://$addr/health"; then
      API_ADDR="$addr"
      return
    fi
    sleep 0.1
  done
  echo "api over $output did not start; see $log" >&2
  return 1
}

# Waits (up to 60 s) until the server at $1 has loaded gold.
wait_for_gold() {
  for _ in $(seq 600); do
    if curl -sf "http://$1/health" >/dev/null; then return; fi
    sleep 0.1
  done
  echo "no gold loaded at $1" >&2
  return 1
}

# Unless $2/out/gold exists: generates $1 events (further `generate` flags
# after them) into $2/in and runs the pipeline into $2/out.
build_gold() {
  local events="$1" work="$2" bin="${CARGO_TARGET_DIR:-target}/debug/pipeline"
  shift 2
  if [ ! -d "$work/out/gold" ]; then
    rm -rf "$work"
    "$bin" generate --events "$events" --out "$work/in" "$@" >/dev/null
    RUST_LOG=warn "$bin" run --config config/minutely.toml --input "$work/in" --output "$work/out" \
      --max-reject-ratio 1 >/dev/null
  fi
}

# Gold from the committed sample in a fresh folder, and `api` over it and
# over an empty output: sets WORK, SAMPLE_ADDR and EMPTY_ADDR. On exit the
# servers are stopped by their PIDs and WORK is removed.
serve_sample_and_empty() {
  WORK="$(mktemp -d)"
  SERVER_PIDS=()
  trap 'for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
  RUST_LOG=warn "${CARGO_TARGET_DIR:-target}/debug/pipeline" run --config config/minutely.toml \
    --input input --output "$WORK/out" >/dev/null
  mkdir -p "$WORK/empty"
  # Requests with malformed headers make hyper log connection errors: expected.
  RUST_LOG="warn,warp::server=off" start_api "$WORK/out" "$WORK/api-sample.log"
  SERVER_PIDS+=("$API_PID")
  SAMPLE_ADDR="$API_ADDR"
  RUST_LOG="warn,warp::server=off" start_api "$WORK/empty" "$WORK/api-empty.log"
  SERVER_PIDS+=("$API_PID")
  EMPTY_ADDR="$API_ADDR"
  wait_for_gold "$SAMPLE_ADDR"
}
