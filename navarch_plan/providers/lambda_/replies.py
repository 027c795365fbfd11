"""Lambda Cloud's HTTP replies judged: a failed one as a typed ProviderError (by its
`error.code`, the status only as fallback), any body read as JSON or nothing. Apart
from provider.py because this is the API's error contract, read without sending
anything; the provider decides what to retry."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from navarch_plan.errors import (
    AuthError,
    CapacityError,
    InvalidRequestError,
    NotFoundError,
    ProviderError,
    QuotaError,
    RateLimitError,
    TransientError,
)

__all__ = ["reply_json", "error_from_reply"]

# The spec says to match on `code`, never on the message.
_ERRORS: dict[str, type[ProviderError]] = {
    "instance-operations/launch/insufficient-capacity": CapacityError,
    "global/quota-exceeded": QuotaError,
    "global/invalid-api-key": AuthError,
    "global/account-inactive": AuthError,
    "global/invalid-address": AuthError,
    "global/object-does-not-exist": NotFoundError,
    "global/invalid-parameters": InvalidRequestError,
    # A file system lives in one region: naming it for another is a config mistake.
    "instance-operations/launch/file-system-in-wrong-region": InvalidRequestError,
}


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date; anything else counts as absent."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _origin(url: str) -> str:
    """`https://cloud.lambda.ai/api/v1?key=...` -> `https://cloud.lambda.ai`."""
    try:
        parts = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return ""
    host = parts.host or ""
    return f"{parts.scheme}://{host}" if parts.scheme and host else ""


def reply_json(resp: httpx.Response) -> Any:
    """The body as JSON, or None: error bodies (429s above all) may be empty or HTML."""
    try:
        return resp.json()
    except ValueError:
        return None


def error_from_reply(resp: httpx.Response, provider: str, region: str,
                     scrub: Callable[[str], str]) -> ProviderError:
    """The error code decides; the HTTP status is the fallback when there is none.
    `scrub` removes the API key from any text the cloud echoes back."""
    body = reply_json(resp)
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    status = resp.status_code
    code = str(err.get("code") or "")
    cloud = scrub(str(err.get("message") or f"HTTP {status} {resp.reason_phrase}".strip()))
    message = f"{cloud} {scrub(str(err['suggestion']))}" if err.get("suggestion") else cloud
    kw = {"provider": provider, "region": region, "code": code, "cloud_message": cloud}
    if status == 429:
        wait = _retry_after(resp.headers.get("retry-after"))
        return RateLimitError(message, retry_after=wait, **kw)
    if 300 <= status < 400:
        # A Location header can echo the request, query and credentials included:
        # only its scheme and host are said.
        where = _origin(resp.headers.get("location", "")) or "another address"
        return InvalidRequestError(f"the API redirects to {where}; set base_url to the "
                                   "current API address", **kw)
    error = _error_class(code, status)(message, **kw)
    if isinstance(error, QuotaError):  # Lambda quotas are account-wide, not per region
        error.provider_wide = True
    return error


def _error_class(code: str, status: int) -> type[ProviderError]:
    cls = _ERRORS.get(code)
    if cls is not None:
        return cls
    if code.startswith("provider/") or status >= 500:
        return TransientError
    if status in (401, 403):
        return AuthError
    return InvalidRequestError  # includes a 404 without Lambda's code: likely a wrong base_url
