"""google-cloud-compute failures as navarch's typed errors: an HTTP error, a finished
zone or region operation that carries errors, or an auth or transport failure. Apart
from provider.py (as aws/faults.py is from the EC2 client) because it is the cloud's
error contract, read without calling anything; catalog.py knows the codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from navarch_plan.errors import (
    AuthError,
    CapacityError,
    InvalidRequestError,
    NotFoundError,
    NotOfferedError,
    ProviderError,
    QuotaError,
    RateLimitError,
    TransientError,
)
from navarch_plan.providers.gcp import catalog

__all__ = ["gce_error", "from_operation", "translating"]

_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


def gce_error(provider: str, cls: type[ProviderError], message: str, region: str, code: str,
              **extra: Any) -> ProviderError:
    """An error of class `cls`, the cloud's message kept as its cloud_message."""
    return cls(message, provider=provider, region=region, code=code,
               cloud_message=message, **extra)


def _classify(provider: str, status: int, reasons: set[str], message: str, code: str,
              region: str, *, retry_after: float | None = None,
              quota_names: str = "", instance_type: str = "") -> ProviderError:
    def err(cls: type[ProviderError], **extra: Any) -> ProviderError:
        return gce_error(provider, cls, message, region, code, **extra)

    if capacity := next((r for r in reasons if r in catalog.CAPACITY_CODES), ""):
        return gce_error(provider, CapacityError, message, region, capacity)
    if catalog.reservation_full(message):
        return gce_error(provider, CapacityError, message, region, "RESERVATION_FULL")
    if "quotaExceeded" in reasons or "QUOTA_EXCEEDED" in reasons:
        wide, types = catalog.quota_scope(f"{message} {quota_names}", instance_type)
        return err(QuotaError, provider_wide=wide, instance_types=types)
    if instance_type and catalog.not_offered(status, message):
        # The zone does not sell the machine or accelerator type: the next may.
        return err(NotOfferedError)
    if status == 429 or reasons & _RATE_REASONS:
        return err(RateLimitError, retry_after=retry_after)
    if status in (401, 403):
        return err(AuthError)
    if status == 404:
        return err(NotFoundError)
    if status in (400, 412, 413):
        return err(InvalidRequestError)
    if status in (0, 409) or status >= 500:
        # 0: no HTTP status at all; 409 outside insert: another operation is in
        # flight on the resource, which settles on its own.
        return err(TransientError)
    return err(ProviderError)


def _from_http(exc: gexc.GoogleAPICallError, provider: str, region: str,
               instance_type: str = "") -> ProviderError:
    errs = [e for e in exc.errors if isinstance(e, dict)]
    reasons = {str(e.get("reason", "")) for e in errs} | {exc.reason or ""}
    message = next((str(e["message"]) for e in errs if e.get("message")), exc.message)
    status = int(exc.code or 0)
    code = next((r for r in (e.get("reason") for e in errs) if r), "") or f"HTTP_{status}"
    retry_after = None
    if exc.response is not None:
        header = getattr(exc.response, "headers", {}).get("Retry-After", "")
        retry_after = float(header) if header.replace(".", "", 1).isdigit() else None
    return _classify(provider, status, reasons, message, code, region,
                     retry_after=retry_after, instance_type=instance_type)


def from_operation(op: Any, provider: str, zone: str, instance_type: str = "") -> ProviderError:
    """The error a finished operation carries (`zone` "" for a regional one)."""
    errs = list(op.error.errors)
    codes = [e.code for e in errs if e.code]
    message = "; ".join(e.message for e in errs if e.message)
    message = message or op.http_error_message or f"operation {op.name} failed"
    # Quota names (GPUS_ALL_REGIONS) may sit only in the structured details.
    quota_names = " ".join(d.quota_info.metric_name + " " + d.quota_info.limit_name
                           for e in errs for d in e.error_details)
    code = codes[0] if codes else f"HTTP_{op.http_error_status_code}"
    return _classify(provider, op.http_error_status_code, set(codes), message, code,
                     catalog.region_of(zone), quota_names=quota_names,
                     instance_type=instance_type)


@contextmanager
def translating(provider: str, zone: str = "", instance_type: str = "") -> Iterator[None]:
    """Turn client, auth and transport exceptions into the typed ProviderErrors;
    `instance_type`: the type an insert asked for (what a quota or a zone refused)."""
    region = catalog.region_of(zone) if zone else ""
    try:
        yield
    except gexc.GoogleAPICallError as e:
        raise _from_http(e, provider, region, instance_type) from e
    except gexc.RetryError as e:
        raise gce_error(provider, TransientError, str(e), region, "RETRY_EXHAUSTED") from e
    except (auth_exc.DefaultCredentialsError, auth_exc.RefreshError) as e:
        raise gce_error(provider, AuthError, f"credentials missing or refused: {e}", region,
                        "CREDENTIALS") from e
    except (requests.RequestException, auth_exc.TransportError) as e:
        raise gce_error(provider, TransientError, str(e), region, type(e).__name__) from e
