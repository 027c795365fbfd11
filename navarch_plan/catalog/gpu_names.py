"""Cloud GPU descriptions as navarch's GPU model names. Pure.

Lambda describes a type's GPUs in words: `gpu_description` is "Tesla V100 (16 GB)",
"H100 (80 GB PCIe)", "A100 (40 GB SXM4)", "Quadro RTX 6000 (24 GB)", "RTX 6000 Ada
(48 GB)", and `description` puts the count first ("8x Tesla V100 (16 GB)"). navarch
names a GPU the way `gpu:` specs and the shipped catalog do: the model alone, upper case,
without vendor or product-line words (`V100`, `H100`, `RTX6000`), with the memory per GPU
apart (16). The form factor (PCIe, SXM4) is kept for display but matches nothing.

A description this module cannot read still yields a model (the words before any
parenthesis, squeezed) and no memory: an unknown GPU is shown, never dropped or raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["GpuName", "parse_gpu_description"]

# Words that name a vendor or a product line, not the model: "NVIDIA Tesla V100" is a V100,
# "Quadro RTX 6000" an RTX 6000 (SkyPilot and dstack call it RTX6000 too).
_NOISE = {"nvidia", "tesla", "quadro", "geforce", "amd", "instinct"}
_COUNT = re.compile(r"^\s*(\d+)\s*[x×]\s+", re.IGNORECASE)
_DETAIL = re.compile(r"\(([^)]*)\)?")
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*(GB|GiB|TB)\b", re.IGNORECASE)
_FORM = re.compile(r"\b(PCIe|SXM\d*|NVL|HGX|OAM)\b", re.IGNORECASE)


@dataclass(frozen=True)
class GpuName:
    model: str  # "V100"; "" when the description is empty
    memory_gb: int | None = None  # per GPU
    form_factor: str = ""  # "PCIe", "SXM4", ...
    count: int | None = None  # from a leading "8x", when the text has one


def parse_gpu_description(text: object) -> GpuName:
    """"8x Tesla V100 (16 GB)" -> GpuName("V100", 16, "", 8). Never raises."""
    rest = str(text or "").strip()
    count = None
    if match := _COUNT.match(rest):
        count, rest = int(match.group(1)), rest[match.end():]
    detail = _DETAIL.search(rest)
    words = rest[:detail.start()] if detail else rest
    inside = detail.group(1) if detail else ""
    memory = _memory_gb(inside) if detail else _memory_gb(words)
    if not detail:  # "H100 80GB": memory and form may follow the model without brackets
        words = _FORM.sub(" ", _MEMORY.sub(" ", words))
    form = _FORM.search(inside)
    return GpuName(_model(words), memory, form.group(1) if form else "", count)


def _memory_gb(text: str) -> int | None:
    match = _MEMORY.search(text)
    if not match:
        return None
    value = float(match.group(1)) * (1024 if match.group(2).upper() == "TB" else 1)
    return int(round(value))


def _model(words: str) -> str:
    kept = [w for w in re.split(r"[\s_]+", words) if w and w.lower() not in _NOISE]
    return re.sub(r"[^A-Za-z0-9-]", "", "".join(kept)).upper()
