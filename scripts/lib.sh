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
# extra arguments after them (API_LAUNCH, when set, is a command prefix such
# as `taskset -c 1` that execs it); sets API_PID, API_URL (http:// or https://)
# and API_ADDR (host:port) once it answers. HTTPS servers here use the
# self-signed certificate of `make_access`, so curl is told not to verify.
start_api() {
  local output="$1" log="$2" url=""
  shift 2
  ${API_LAUNCH:-} "${CARGO_TARGET_DIR:-target}/debug/api" --config config/minutely.toml --output "$output" \
    --bind 127.0.0.1:0 "$@" >"$log" &
  API_PID=$!
  for _ in $(seq 600); do
    url="$(sed -n 's|^Listening on \(https\{0,1\}://.*\)$|\1|p' "$log")"
    if [ -n "$url" ] && curl -sk -o /dev/null "$url/health"; then
      API_URL="$url"
      API_ADDR="${url#*://}"
      return
    fi
    sleep 0.1
  done
  echo "api over $output did not start; see $log" >&2
  return 1
}

# Waits (up to 60 s) until the server at $1 (a URL, or host:port for plain
# HTTP) has loaded gold.
wait_for_gold() {
  local url="$1"
  case "$url" in http://* | https://*) ;; *) url="http://$url" ;; esac
  for _ in $(seq 600); do
    if curl -skf "$url/health" >/dev/null; then return; fi
    sleep 0.1
  done
  echo "no gold loaded at $url" >&2
  return 1
}

# Access for a server in folder $1: a self-signed certificate for
# `localhost` (openssl), and a token from `api token new`. Sets TLS_CERT,
# TLS_KEY, TOKENS_FILE, TOKEN, and ACCESS_ARGS (the flags that turn both on).
make_access() {
  local dir="$1" made
  need_debian openssl openssl
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
  made="$("${CARGO_TARGET_DIR:-target}/debug/api" token new ci)"
  TOKEN="$(sed -n 's/^token: //p' <<<"$made")"
  sed -n 's/^tokens file line: //p' <<<"$made" >"$dir/tokens"
  TLS_CERT="$dir/cert.pem" TLS_KEY="$dir/key.pem" TOKENS_FILE="$dir/tokens"
  ACCESS_ARGS=(--tls-cert "$TLS_CERT" --tls-key "$TLS_KEY" --tokens-file "$TOKENS_FILE")
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

# `api` twice over output $1, logs and access files in folder $2: open
# (OPEN_URL) and with a token and TLS (SECURE_URL, https://localhost:PORT;
# see `make_access`). Adds both PIDs to SERVER_PIDS (declare it, and a trap
# that stops them, first).
serve_open_and_secure() {
  local output="$1" dir="$2"
  # Requests with malformed headers make hyper log connection errors: expected.
  RUST_LOG="warn,warp::server=off" start_api "$output" "$dir/api-open.log"
  SERVER_PIDS+=("$API_PID")
  OPEN_URL="$API_URL"
  make_access "$dir/access"
  RUST_LOG="warn,warp::server=off" start_api "$output" "$dir/api-secure.log" "${ACCESS_ARGS[@]}"
  SERVER_PIDS+=("$API_PID")
  SECURE_URL="https://localhost:${API_ADDR##*:}"
}

# Gold from the committed sample in a fresh folder, and `api` over it (open,
# and with a token and TLS) and over an empty output: sets WORK,
# SAMPLE_ADDR, SECURE_URL (https://localhost:PORT, see `make_access` for
# TOKEN and TLS_CERT) and EMPTY_ADDR. On exit the servers are stopped by
# their PIDs and WORK is removed.
serve_sample_and_empty() {
  WORK="$(mktemp -d)"
  SERVER_PIDS=()
  trap 'for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
  RUST_LOG=warn "${CARGO_TARGET_DIR:-target}/debug/pipeline" run --config config/minutely.toml \
    --input input --output "$WORK/out" >/dev/null
  mkdir -p "$WORK/empty"
  serve_open_and_secure "$WORK/out" "$WORK"
  SAMPLE_ADDR="${OPEN_URL#http://}"
  # Requests with malformed headers make hyper log connection errors: expected.
  RUST_LOG="warn,warp::server=off" start_api "$WORK/empty" "$WORK/api-empty.log"
  SERVER_PIDS+=("$API_PID")
  EMPTY_ADDR="$API_ADDR"
  wait_for_gold "$SAMPLE_ADDR"
  wait_for_gold "$SECURE_URL"
}
