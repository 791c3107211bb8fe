"""The independent reference of bench/storage.py: plain boto3 with a thread pool (no fastreg code, no
asyncio) writes N objects of SIZE with JOBS threads, then reads each back once. Runs in its own
virtualenv (bench/work/boto3-venv) so its botocore does not meet aiobotocore's pin.

    python bench/boto3_ref.py ENDPOINT BUCKET SIZE JOBS TOTAL_BYTES  -> one JSON line
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3  # type: ignore[import-not-found]
from botocore.config import Config  # type: ignore[import-not-found]


def main() -> None:
    endpoint, bucket, size, jobs, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(max_pool_connections=jobs, retries={"total_max_attempts": 1},
                      request_checksum_calculation="when_required", response_checksum_validation="when_required"))
    n = max(jobs, total // size)
    body = os.urandom(size)
    prefix = f"boto3-{size}-{jobs}"

    def put(i: int) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{i}", Body=body)

    def get(i: int) -> None:
        data = client.get_object(Bucket=bucket, Key=f"{prefix}/{i}")["Body"].read()
        assert len(data) == size

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda i: client.head_bucket(Bucket=bucket), range(jobs)))  # open the connections
        t0 = time.perf_counter()
        list(pool.map(put, range(n)))
        up = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(pool.map(get, range(n)))
        down = time.perf_counter() - t0
        list(pool.map(lambda i: client.delete_object(Bucket=bucket, Key=f"{prefix}/{i}"), range(n)))
    mib = n * size / 2**20
    print(json.dumps({"objects": n, "put_mib_per_s": mib / up, "get_mib_per_s": mib / down}))


if __name__ == "__main__":
    main()
