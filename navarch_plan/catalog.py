"""Abstract instance types and the fake cloud's priced catalog. Pure data.

Abstract names (`h100-8x`) map to each cloud's native type; a name that is not
abstract is taken as native. Mappings were checked against the clouds' GPU facts:
Lambda `gpu_8x_h100_sxm5` (8x H100 SXM5), GCP `a3-highgpu-8g` (8x H100 80GB),
AWS `p5.48xlarge` (8x H100), `p4d.24xlarge` (8x A100 40GB), `g5.xlarge` (1x A10G),
`g6.xlarge` (1x L4), GCP `g2-standard-4` (1x L4), `a2-highgpu-8g` (8x A100 40GB).
"""

from __future__ import annotations

from navarch_plan.model import InstanceType

__all__ = ["ABSTRACT_TYPES", "FAKE_CATALOG", "FAKE_REGIONS", "native_type"]

ABSTRACT_TYPES: dict[str, dict[str, str]] = {
    "h100-8x": {"lambda": "gpu_8x_h100_sxm5", "gcp": "a3-highgpu-8g", "aws": "p5.48xlarge",
                "fake": "gpu_8x_h100"},
    "h100-1x": {"lambda": "gpu_1x_h100_pcie", "gcp": "a3-highgpu-1g", "fake": "gpu_1x_h100"},
    "a100-8x": {"lambda": "gpu_8x_a100", "gcp": "a2-highgpu-8g", "aws": "p4d.24xlarge",
                "fake": "gpu_8x_a100"},
    "a100-1x": {"lambda": "gpu_1x_a100", "gcp": "a2-highgpu-1g", "fake": "gpu_1x_a100"},
    "a10-1x": {"lambda": "gpu_1x_a10", "aws": "g5.xlarge", "fake": "gpu_1x_a10"},
    "l4-1x": {"gcp": "g2-standard-4", "aws": "g6.xlarge", "fake": "gpu_1x_l4"},
}


def native_type(provider_type: str, name: str) -> str | None:
    """The provider's own name for `name`; None when an abstract name has no mapping."""
    mapping = ABSTRACT_TYPES.get(name)
    if mapping is None:
        return name
    return mapping.get(provider_type)


FAKE_REGIONS = ("us-west-1", "us-east-1", "eu-central-1")

# Prices echo the public list prices of comparable offers, so plans look realistic.
FAKE_CATALOG: tuple[InstanceType, ...] = (
    InstanceType("gpu_1x_a10", 1, "A10", 200, 30, 0.75, FAKE_REGIONS),
    InstanceType("gpu_1x_l4", 1, "L4", 64, 16, 0.70, FAKE_REGIONS),
    InstanceType("gpu_1x_a100", 1, "A100", 200, 30, 1.29, FAKE_REGIONS),
    InstanceType("gpu_8x_a100", 8, "A100", 1800, 124, 14.32, FAKE_REGIONS),
    InstanceType("gpu_1x_h100", 1, "H100", 200, 26, 2.49, FAKE_REGIONS),
    InstanceType("gpu_8x_h100", 8, "H100", 1800, 208, 23.92, FAKE_REGIONS),
    InstanceType("cpu_4x", 0, "", 16, 4, 0.20, FAKE_REGIONS),
)
