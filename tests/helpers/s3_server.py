"""A real S3 API on this machine for the object-store tests: moto's server on 127.0.0.1 and a free port, as
s3fs's own test suite runs it (no network: nothing leaves the loopback interface).

`start_server()` returns the endpoint and sets the standard variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION) that s3fs, and subprocesses of the tests, read; nothing else
configures the client, so the tests also check that those variables are enough.
"""

from __future__ import annotations

import os
import uuid

S3_ENV = {"AWS_ACCESS_KEY_ID": "kdcache-test", "AWS_SECRET_ACCESS_KEY": "kdcache-test",
          "AWS_DEFAULT_REGION": "us-east-1"}


def start_server():
    """(server, endpoint URL); the caller stops the server."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def new_bucket() -> str:
    """A fresh bucket on the server named by $AWS_ENDPOINT_URL (one per test: tests never see each other's
    objects)."""
    import boto3

    name = f"kdcache-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return name
