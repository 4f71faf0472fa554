"""A throwaway Spark Connect server for tests: Sail or Apache Spark on
127.0.0.1, at a free port.

Usage: spark_server.py sail|spark

Starts the server in the foreground as a child process (Sail in
local-cluster mode with two workers; Apache Spark with `--master
local[2]`), prints `ready sc://127.0.0.1:PORT` once the port accepts
connections, then serves until its standard input closes; the server is
then stopped by its PID (so it dies with the test that started it, even
after `kill -9`). Extra environment (AWS_* for S3) passes through.
"""

import os
import signal
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(kind: str, port: int) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    if kind == "sail":
        env.update(SAIL_MODE="local-cluster", SAIL_CLUSTER__WORKER_INITIAL_COUNT="2")
        return [os.path.join(bindir, "sail"), "spark", "server", "--ip", "127.0.0.1", "--port", str(port)], env
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    env.update(SPARK_HOME=home, SPARK_NO_DAEMONIZE="1", SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    env.setdefault("SPARK_LOG_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"minutely-spark-{port}"))
    return [
        os.path.join(home, "sbin", "start-connect-server.sh"),
        "--master", "local[2]",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.host=127.0.0.1",
    ], env


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "sail"
    if kind not in ("sail", "spark"):
        sys.exit(f"unknown server kind {kind!r}: expected sail or spark")
    port = free_port()
    argv, env = command(kind, port)
    server = subprocess.Popen(argv, env=env, stdout=sys.stderr, start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        if server.poll() is not None:
            sys.exit(f"{kind} server exited with {server.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                os.killpg(server.pid, signal.SIGKILL)
                sys.exit(f"{kind} server did not listen on port {port} within 180 s")
            time.sleep(0.1)
    print(f"ready sc://127.0.0.1:{port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
