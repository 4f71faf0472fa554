"""A throwaway S3 server for tests: moto on 127.0.0.1, an ephemeral port.

Prints `ready http://127.0.0.1:PORT` once the bucket named on the command
line exists, then serves until its standard input closes, so the server
dies with the test process that started it (even after `kill -9`).
"""

import logging
import sys

import boto3
from moto.server import ThreadedMotoServer


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    buckets = sys.argv[1:] or ["minutely"]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket)
    print(f"ready {endpoint}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
