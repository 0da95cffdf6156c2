"""A local S3 server for tests: moto's server mode on 127.0.0.1 on a free port (no network, no credentials).

The ``s3_endpoint`` fixture (module scope) is in ``tests/conftest.py``; :func:`s3_env` and :func:`make_bucket` are
here. Tests that need them call ``pytest.importorskip("moto.server")`` first.
"""

from __future__ import annotations

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment variables pointing boto3/s3fs at ``endpoint`` with test credentials."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


def make_bucket(endpoint: str, bucket: str) -> None:
    """Create ``bucket`` (no error when it exists)."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
