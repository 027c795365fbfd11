"""botocore failures as navarch's typed errors, worded for the person who must act."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from navarch_plan.errors import (
    AuthError,
    InvalidRequestError,
    ProviderError,
    QuotaError,
    TransientError,
)
from navarch_plan.providers.aws.catalog import (
    CONFIG_GAPS,
    ERROR_CLASSES,
    FAMILY_QUOTAS,
    same_quota,
)
from navarch_plan.providers.aws.launch import REGION_SCOPED

__all__ = ["gap_hint", "provider_error", "translating"]

_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError,
                      TokenRetrievalError, SSOError)
_TRANSPORT_ERRORS = (HTTPClientError, BotoConnectionError)  # timeouts, resets, no route


def provider_error(exc: ClientError | BotoCoreError, provider: str, region: str,
                   what: str, instance_type: str = "") -> ProviderError:
    """The typed error for a botocore failure; capacity codes win over their HTTP 500.
    A vCPU quota rules out the types of its family group in this region (EC2 counts
    "Running On-Demand P instances" apart from "G and VT" and standard ones)."""
    if not isinstance(exc, ClientError):
        cls: type[ProviderError] = (AuthError if isinstance(exc, _CREDENTIAL_ERRORS)
               else TransientError if isinstance(exc, _TRANSPORT_ERRORS)
               else InvalidRequestError)  # e.g. ParamValidationError: our request is wrong
        return cls(f"{what}: {exc}", provider=provider, region=region,
                   code=type(exc).__name__, cloud_message=str(exc))
    error = exc.response.get("Error", {})
    code = error.get("Code") or "Unknown"
    cloud_message = error.get("Message") or str(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    cls = next((c for codes, c in ERROR_CLASSES if code in codes),
               TransientError if status >= 500 else InvalidRequestError)
    message = f"{what}: {cloud_message}"
    if code in CONFIG_GAPS:
        message += "; " + gap_hint(CONFIG_GAPS[code], provider, region)
    if cls is QuotaError and code in FAMILY_QUOTAS and instance_type:
        return QuotaError(message, provider=provider, region=region, code=code,
                          cloud_message=cloud_message,
                          instance_types=same_quota(instance_type))
    return cls(message, provider=provider, region=region, code=code,
               cloud_message=cloud_message)


def gap_hint(option: str, provider: str, region: str) -> str:
    """What to do when a region-scoped id the config gives does not exist in `region`."""
    return (f"{REGION_SCOPED[option]}: give providers.{provider}.{option} a value that "
            f"exists in {region} (a map by region: {{{region}: ...}})")


@contextmanager
def translating(provider: str, region: str, what: str,
                instance_type: str = "") -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise provider_error(exc, provider, region, what, instance_type) from exc
