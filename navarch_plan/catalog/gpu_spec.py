"""GPU specs as dstack writes them: `H100:8`, `A100:80GB:8`, `L4` (one GPU), or a list of
alternatives (`[H100:8, A100:80GB:8]`). Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["GpuSpec", "GpuSpecError", "parse_gpu", "parse_gpu_specs", "matching_types"]

_SPEC = re.compile(r"^(?P<model>[A-Za-z][A-Za-z0-9-]*)(?::(?P<mem>\d+)GB)?(?::(?P<n>\d+))?$",
                   re.IGNORECASE)


class GpuSpecError(ValueError):
    pass


@dataclass(frozen=True)
class GpuSpec:
    model: str
    count: int
    memory_gb: int | None = None

    def matches(self, gpu_type: str, gpu_count: int, gpu_memory_gb: float | None) -> bool:
        if _normal(gpu_type) != _normal(self.model) or gpu_count != self.count:
            return False
        return self.memory_gb is None or gpu_memory_gb == self.memory_gb


def _normal(model: str) -> str:
    """`A10G` is sold as an A10 variant; names compare case- and punctuation-blind."""
    text = re.sub(r"[^a-z0-9]", "", model.lower())
    return "a10" if text == "a10g" else text


def parse_gpu(text: str) -> GpuSpec:
    match = _SPEC.match(text.strip())
    if not match:
        raise GpuSpecError(f"bad GPU spec {text!r}: expected MODEL:COUNT, e.g. H100:8 or "
                           "A100:80GB:8")
    if re.search(r"\dx\d+$", match.group("model"), re.IGNORECASE):
        raise GpuSpecError(f"bad GPU spec {text!r}: write the count after a colon "
                           f"(e.g. {match.group('model').rsplit('x', 1)[0].upper()}:8)")
    count = int(match.group("n") or 1)
    if not 1 <= count <= 16:
        raise GpuSpecError(f"bad GPU spec {text!r}: count must be 1..16")
    memory = int(match.group("mem")) if match.group("mem") else None
    return GpuSpec(match.group("model").upper(), count, memory)


def parse_gpu_specs(value: str | list[str]) -> list[GpuSpec]:
    return [parse_gpu(v) for v in ([value] if isinstance(value, str) else value)]


def matching_types(specs: Iterable[GpuSpec], offers: Iterable[Any]) -> list[str]:
    """Names of the offers (InstanceType-like, with gpu_type, gpu_count and optionally
    gpu_memory_gb) that satisfy any of the specs, in catalog order."""
    specs = list(specs)
    return [o.name for o in offers
            if any(s.matches(o.gpu_type, o.gpu_count, getattr(o, "gpu_memory_gb", None))
                   for s in specs)]
