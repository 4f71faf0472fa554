# Shared by the load-test and browser-test scripts: `source scripts/lib.sh`.

# Installs Debian packages whose commands are missing: `need_debian CMD PKG`.
need_debian() {
  if ! command -v "$1" >/dev/null; then
    echo "Installing $2 from Debian..."
    (apt-get install -y -q "$2" || (apt-get update -q && apt-get install -y -q "$2")) >/dev/null
  fi
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
