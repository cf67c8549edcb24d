"""A real S3-compatible store for the tests: moto's standalone server, from its own
virtual environment, on a free loopback port, with IAM authentication switched on — so a
wrong secret is refused as a real store refuses it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.mlserver import REPO, free_port, stop, wait_ok

MOTO_BIN = Path(os.environ.get("MOTO_BIN", REPO / ".venv-moto" / "bin" / "moto_server"))
BUCKET = "explainer-data"
# The unauthenticated calls that create the IAM user, its key and its policy; every call
# after them is authenticated and authorised.
SETUP_CALLS = 3


@dataclass(frozen=True)
class S3Store:
    endpoint: str  # http://127.0.0.1:PORT
    key: str
    secret: str
    bucket: str

    def env(self, **overrides: str) -> dict[str, str]:
        """KServe's S3 variables, as its storage initializer sets them from a secret."""
        host = self.endpoint.removeprefix("http://")
        env = {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "S3_ENDPOINT": host,
            "S3_USE_HTTPS": "0",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        env.update(overrides)
        return env

    def put(self, key: str, body: bytes) -> None:
        self._client().put_object(Bucket=self.bucket, Key=key, Body=body)

    def _client(self):  # type: ignore[no-untyped-def]
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )


@contextmanager
def running_moto(root: Path) -> Iterator[S3Store]:
    if not MOTO_BIN.exists():
        raise RuntimeError(
            f"moto_server not found at {MOTO_BIN}: run `make test`, which installs it"
        )
    port = free_port()
    log = (root / "moto.log").open("w")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_CALLS)}
    process = subprocess.Popen(
        [str(MOTO_BIN), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_ok(f"{endpoint}/moto-api/", process)
        key, secret = _create_user(endpoint)
        store = S3Store(endpoint, key, secret, BUCKET)
        store._client().create_bucket(Bucket=BUCKET)
        yield store
    finally:
        stop(process)
        log.close()


def _create_user(endpoint: str) -> tuple[str, str]:
    import botocore.session

    iam = botocore.session.get_session().create_client(
        "iam",
        endpoint_url=endpoint,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
        region_name="us-east-1",
    )
    iam.create_user(UserName="explainer")
    created = iam.create_access_key(UserName="explainer")["AccessKey"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="explainer", PolicyName="s3", PolicyDocument=json.dumps(policy))
    return str(created["AccessKeyId"]), str(created["SecretAccessKey"])
