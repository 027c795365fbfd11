"""The few S3 calls the state backend makes, through boto3, with every failure turned
into a StateError. Imported only when a config uses the s3 backend: boto3 is heavy.

Credentials come from boto3's usual chain (environment, shared files, SSO, instance or
task role); nothing secret is ever read from the config.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from navarch_plan.errors import StateError

__all__ = ["Bucket", "S3Conflict", "S3Error"]

# Bounded retries: a dead endpoint must fail an action in seconds, not minutes, so a
# run that can no longer record state stops instead of provisioning blind.
_CLIENT_CONFIG = BotoConfig(retries={"mode": "standard", "max_attempts": 3},
                            connect_timeout=5, read_timeout=30)


class S3Error(StateError):
    """An S3 call failed: unreachable, denied, no such bucket, no credentials."""


class S3Conflict(StateError):
    """A conditional request lost: the object is not what this process last saw."""


def _status(exc: ClientError) -> tuple[int, str]:
    meta = exc.response.get("ResponseMetadata", {})
    return int(meta.get("HTTPStatusCode") or 0), str(exc.response.get("Error", {}).get("Code"))


class Bucket:
    def __init__(self, name: str, region: str = "", endpoint_url: str = "") -> None:
        self.name = name
        session = boto3.session.Session()
        self.client: Any = session.client("s3", region_name=region or None,
                                          endpoint_url=endpoint_url or None,
                                          config=_CLIENT_CONFIG)

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    @contextmanager
    def _calling(self, what: str, key: str) -> Iterator[None]:
        """412 (and 409, a concurrent conditional write) become S3Conflict; anything
        else that went wrong becomes S3Error naming the object and the cause."""
        try:
            yield
        except ClientError as exc:
            status, code = _status(exc)
            if status in (409, 412) or code in ("PreconditionFailed",
                                                "ConditionalRequestConflict"):
                raise S3Conflict(f"{self.url(key)} changed ({code})") from None
            if code == "NoSuchBucket":
                raise S3Error(f"bucket {self.name!r} does not exist (create it first; "
                              "navarch never creates buckets)") from None
            raise S3Error(f"S3 {what} of {self.url(key)} failed: {code}: "
                          f"{exc.response.get('Error', {}).get('Message', '')}") from None
        except NoCredentialsError:
            raise S3Error("no AWS credentials found for the S3 state backend (boto3's "
                          "usual chain: environment, ~/.aws, SSO, instance role)") from None
        except BotoCoreError as exc:
            raise S3Error(f"S3 unreachable: {what} of {self.url(key)} failed: {exc}") from None

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag; None when there is no such object."""
        with self._calling("read", key):
            try:
                response = self.client.get_object(Bucket=self.name, Key=key)
            except ClientError as exc:
                if _status(exc)[1] in ("NoSuchKey", "404"):
                    return None
                raise
            return response["Body"].read(), response["ETag"]

    def head(self, key: str) -> str | None:
        """The object's ETag; None when there is no such object."""
        with self._calling("check", key):
            try:
                return str(self.client.head_object(Bucket=self.name, Key=key)["ETag"])
            except ClientError as exc:
                if _status(exc)[0] == 404:
                    return None
                raise

    def put(self, key: str, body: bytes, *, if_match: str | None = None,
            create_only: bool = False) -> str:
        """Write the object; returns its new ETag. `if_match`: only over exactly that
        version; `create_only`: only if no object exists (If-None-Match: *). Either
        condition failing raises S3Conflict and writes nothing."""
        conditions: dict[str, str] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if create_only:
            conditions["IfNoneMatch"] = "*"
        with self._calling("write", key):
            try:
                response = self.client.put_object(Bucket=self.name, Key=key, Body=body,
                                                  ContentType="application/json",
                                                  **conditions)
            except ClientError as exc:
                # If-Match on an object that is gone: S3 answers 404, a lost race too.
                if if_match is not None and _status(exc)[1] in ("NoSuchKey", "404"):
                    raise S3Conflict(f"{self.url(key)} was deleted meanwhile") from None
                raise
            return str(response["ETag"])

    def delete(self, key: str, if_match: str | None = None) -> None:
        """Delete the object; with `if_match`, only that exact version (S3 conditional
        delete), so a lock taken over by someone else is never removed by mistake."""
        extra = {"IfMatch": if_match} if if_match is not None else {}
        with self._calling("delete", key):
            try:
                self.client.delete_object(Bucket=self.name, Key=key, **extra)
            except ClientError as exc:
                if if_match is not None and _status(exc)[1] in ("NoSuchKey", "404"):
                    raise S3Conflict(f"{self.url(key)} was deleted meanwhile") from None
                raise

    def keys(self, prefix: str) -> list[str]:
        """Every key under the prefix, in S3's (lexicographic) order."""
        found: list[str] = []
        with self._calling("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix)
            for page in pages:
                found += [item["Key"] for item in page.get("Contents", [])]
        return found

    def delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            with self._calling("delete", keys[start]):
                response = self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise S3Error(f"S3 delete of {self.url(first.get('Key', ''))} failed: "
                              f"{first.get('Code')}: {first.get('Message')}")

    def versioning_enabled(self) -> bool:
        """False too when we may not ask: then a backup object keeps the old version."""
        try:
            status = self.client.get_bucket_versioning(Bucket=self.name).get("Status")
        except (ClientError, BotoCoreError):
            return False
        return status == "Enabled"
