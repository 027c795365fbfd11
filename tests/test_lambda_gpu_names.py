"""Lambda's GPU descriptions ("Tesla V100 (16 GB)", "8x H100 (80 GB SXM5)") read as
navarch's GPU model names and memory, so `gpu: V100:8` finds gpu_8x_v100 in the live
catalog as it does in the shipped one."""

from __future__ import annotations

import json
import re
from contextlib import ExitStack

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from navarch_plan.catalog.gpu_names import GpuName, parse_gpu_description
from navarch_plan.providers.lambda_ import LambdaProvider
from tests.conftest import Workdir
from tests.fakes.lambda_server import FakeLambda, _offer
from tests.test_e2e_clouds import LambdaCloud

# What Lambda's API has said, and what navarch calls it.
REAL = [
    ("Tesla V100 (16 GB)", GpuName("V100", 16)),
    ("8x Tesla V100 (16 GB)", GpuName("V100", 16, count=8)),
    ("H100 (80 GB PCIe)", GpuName("H100", 80, "PCIe")),
    ("8x H100 (80 GB SXM5)", GpuName("H100", 80, "SXM5", 8)),
    ("A100 (40 GB SXM4)", GpuName("A100", 40, "SXM4")),
    ("A100 (80 GB SXM4)", GpuName("A100", 80, "SXM4")),
    ("A10 (24 GB PCIe)", GpuName("A10", 24, "PCIe")),
    ("A6000 (48 GB)", GpuName("A6000", 48)),
    ("Quadro RTX 6000 (24 GB)", GpuName("RTX6000", 24)),
    ("RTX 6000 Ada (48 GB)", GpuName("RTX6000ADA", 48)),
    ("GH200 (96 GB)", GpuName("GH200", 96)),
    ("B200 (180 GB SXM6)", GpuName("B200", 180, "SXM6")),
    ("NVIDIA H100 80GB", GpuName("H100", 80)),
    ("", GpuName("")),
]


@pytest.mark.parametrize(("text", "expected"), REAL)
def test_real_descriptions(text: str, expected: GpuName) -> None:
    assert parse_gpu_description(text) == expected


MODELS = [("V100", "V100"), ("H100", "H100"), ("A100", "A100"), ("A10", "A10"),
          ("GH200", "GH200"), ("B200", "B200"), ("L40S", "L40S"), ("A6000", "A6000"),
          ("RTX 6000", "RTX6000"), ("RTX 6000 Ada", "RTX6000ADA"), ("H200", "H200")]


@st.composite
def descriptions(draw: st.DrawFn) -> tuple[str, GpuName]:
    """Descriptions the way Lambda writes them, with the variations seen or plausible:
    a count in front or not, a vendor word, spacing, GB or GiB, a form factor or none."""
    written, model = draw(st.sampled_from(MODELS))
    vendor = draw(st.sampled_from(["", "NVIDIA ", "Tesla ", "NVIDIA Tesla ", "Quadro "]))
    memory = draw(st.integers(1, 2048))
    unit = draw(st.sampled_from(["GB", "GiB", " GB", " GiB"]))
    form = draw(st.sampled_from(["", "PCIe", "SXM4", "SXM5", "SXM6", "NVL"]))
    count = draw(st.none() | st.integers(1, 16))
    lead = "" if count is None else f"{count}x{draw(st.sampled_from([' ', '  ']))}"
    inside = f"{memory}{unit}" + (f" {form}" if form else "")
    text = f"{lead}{vendor}{written} ({inside})"
    return text, GpuName(model, memory, form, count)


@given(descriptions())
def test_any_lambda_style_description_gives_its_model_memory_form_and_count(
        case: tuple[str, GpuName]) -> None:
    text, expected = case
    assert parse_gpu_description(text) == expected


@given(st.text(max_size=60))
def test_any_text_gives_a_model_name_and_never_raises(text: str) -> None:
    name = parse_gpu_description(text)
    assert re.fullmatch(r"[A-Z0-9-]*", name.model)
    assert name.memory_gb is None or name.memory_gb >= 0


def test_live_offers_carry_the_model_and_memory() -> None:
    fake = FakeLambda(api_key="sk-gpu")
    with LambdaProvider("lambda", "sk-gpu", base_url="http://lambda.test/api/v1",
                        transport=httpx.WSGITransport(app=fake)) as p:
        offers = {o.name: o for o in p.list_instance_types()}
        v100 = offers["gpu_8x_v100"]
        assert (v100.gpu_type, v100.gpu_count, v100.gpu_memory_gb) == ("V100", 8, 16)
        fake.seed_instance("gpu_8x_v100", "us-west-2")
        (node,) = p.list()
        assert (node.gpu_type, node.gpu_count) == ("V100", 8)


def test_gpu_specs_find_lambda_types_live_and_in_the_shipped_catalog(work: Workdir) -> None:
    with ExitStack() as stack:
        lam = LambdaCloud(stack)
        # A type the shipped catalog does not know: only the live description says 180 GB.
        lam.fake.catalog["gpu_1x_b200_sxm6"] = _offer(
            "gpu_1x_b200_sxm6", "B200 (180 GB SXM6)", 499, 1, 26, 225, ["us-west-2"])
        doc = {"version": 1, "workspace": "gpu", "providers": {"lambda": lam.provider},
               "defaults": {"ssh_keys": ["ops-team"]},
               "pools": {"w": {"provider": "lambda", "region": "us-west-2", "gpu": "V100:8",
                               "nodes": 1}}}
        (work.path / "navarch.yaml").write_text(json.dumps(doc))
        plan = work.cli("plan", "--format", "json", env=lam.env)
        assert plan.code == 0, plan.err
        assert [a["instance_type"] for a in plan.json()["actions"]] == ["gpu_8x_v100"]
        for spec, expected, model in (("V100:8", "gpu_8x_v100", "V100"),
                                      ("V100:16GB:8", "gpu_8x_v100", "V100"),
                                      ("B200:180GB:1", "gpu_1x_b200_sxm6", "B200")):
            rows = work.cli("instance-types", "--gpu", spec, "--json", env=lam.env)
            assert rows.code == 0, rows.err
            assert [(r["instance_type"], r["gpu_type"]) for r in rows.json()] == [
                (expected, model)], spec
