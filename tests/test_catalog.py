"""The package catalog (navarch_plan/data/catalog.json): abstract names checked against each
cloud's GPU facts, prices with a source and a date, the views the providers read, and the
file shipped inside the wheel."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from navarch_plan.catalog import facts as catalog
from navarch_plan.catalog.facts import (
    ABSTRACT_TYPES,
    CLOUDS,
    FAKE_CATALOG,
    FAKE_REGIONS,
    PURCHASE_MODELS,
    abstract_types,
    cloud_offers,
    cloud_table,
    native_type,
    offer,
    purchase_problem,
)
from navarch_plan.providers.aws import catalog as aws_catalog
from navarch_plan.providers.fake import FakeProvider
from navarch_plan.providers.gcp import catalog as gcp_catalog

ROOT = Path(__file__).resolve().parent.parent
JSON_PATH = ROOT / "navarch_plan" / "data" / "catalog.json"
TYPE_FIELDS = {"gpu_type", "gpu_count", "gpu_memory_gb", "vcpus", "memory_gb", "price_per_hr",
               "regions"}
MAPPINGS = [(name, cloud) for name, a in abstract_types().items() for cloud in a.native]


# -- abstract names against the clouds' GPU facts --------------------------------------------

def test_every_abstract_name_says_what_it_promises() -> None:
    """`h100-8x` promises 8 H100s: the name itself is the spec the JSON must agree with, so
    a typo in the JSON's gpu_type or gpu_count cannot make a wrong mapping look right."""
    assert {"h100-8x", "h100-1x", "a100-8x", "a100-1x", "a10-1x", "l4-1x"} <= set(ABSTRACT_TYPES)
    for name, a in abstract_types().items():
        m = re.fullmatch(r"([a-z0-9]+)-(\d+)x", name)
        assert m, f"abstract name {name!r} is not MODEL-COUNTx"
        assert (a.gpu_type, a.gpu_count) == (m.group(1).upper(), int(m.group(2))), name
        assert a.description and set(a.native) <= set(CLOUDS), name


@pytest.mark.parametrize(("name", "cloud"), MAPPINGS)
def test_abstract_mapping_matches_the_clouds_gpu_facts(name: str, cloud: str) -> None:
    a = abstract_types()[name]
    native = a.native[cloud]
    facts = cloud_table(cloud).types.get(native)
    assert facts is not None, f"{name} -> {cloud} {native}, which {cloud}'s table lacks"
    assert a.accepts(facts), (f"{name} promises {a.gpu_count}x {a.gpu_type} "
                              f"{a.gpu_memory_gb}GB; {cloud} {native} has {facts.gpu_count}x "
                              f"{facts.gpu_type} {facts.gpu_memory_gb}GB")
    assert native_type(cloud, name) == native


@pytest.mark.parametrize(("name", "gpus", "count"), [
    ("h100-8x", {"H100"}, 8), ("a100-8x", {"A100"}, 8), ("h100-1x", {"H100"}, 1),
    ("a100-1x", {"A100"}, 1), ("a10-1x", {"A10", "A10G"}, 1), ("l4-1x", {"L4"}, 1),
])
def test_known_names_map_to_exactly_their_gpus(name: str, gpus: set[str], count: int) -> None:
    """Spelled out independently of the JSON's own gpu_type/gpu_count fields."""
    for cloud, native in ABSTRACT_TYPES[name].items():
        facts = cloud_table(cloud).types[native]
        assert (facts.gpu_type in gpus, facts.gpu_count) == (True, count), (cloud, native)


def test_a100_8x_is_the_40gb_part_everywhere() -> None:
    """Lambda gpu_8x_a100, GCP a2-highgpu-8g and AWS p4d.24xlarge are 40GB A100s; the 80GB
    types (gpu_8x_a100_80gb_sxm4, a2-ultragpu-8g, p4de.24xlarge) must not be mixed in."""
    mapped = {cloud_table(c).types[n].gpu_memory_gb for c, n in ABSTRACT_TYPES["a100-8x"].items()}
    assert mapped == {40}
    eighty = {"lambda": "gpu_8x_a100_80gb_sxm4", "gcp": "a2-ultragpu-8g", "aws": "p4de.24xlarge"}
    for cloud, native in eighty.items():
        assert cloud_table(cloud).types[native].gpu_memory_gb == 80, native


def test_upstream_mappings_kept() -> None:
    """The mappings the upstream navarch table gets right (reference/conventions.md)."""
    assert native_type("lambda", "h100-8x") == "gpu_8x_h100_sxm5"
    assert native_type("gcp", "h100-8x") == "a3-highgpu-8g"
    assert native_type("aws", "h100-8x") == "p5.48xlarge"
    assert [native_type(c, "a100-8x") for c in ("lambda", "gcp", "aws")] == \
        ["gpu_8x_a100", "a2-highgpu-8g", "p4d.24xlarge"]
    assert [native_type(c, "h100-1x") for c in ("lambda", "gcp")] == \
        ["gpu_1x_h100_pcie", "a3-highgpu-1g"]
    assert (native_type("lambda", "a10-1x"), native_type("aws", "a10-1x")) == \
        ("gpu_1x_a10", "g5.xlarge")
    assert (native_type("gcp", "l4-1x"), native_type("aws", "l4-1x")) == \
        ("g2-standard-4", "g6.xlarge")
    assert native_type("lambda", "l4-1x") is None  # Lambda sells no L4
    assert native_type("gcp", "g2-standard-8") == "g2-standard-8"  # not abstract: native


# -- each cloud's table --------------------------------------------------------------------

def test_the_file_has_exactly_the_documented_shape() -> None:
    doc = json.loads(JSON_PATH.read_text(encoding="utf-8"))
    assert set(doc["clouds"]) == set(CLOUDS)
    for cloud, table in doc["clouds"].items():
        assert {"price_source", "price_date", "currency", "note", "types"} <= set(table) <= {
            "price_source", "price_date", "currency", "note", "types", "purchase_source",
            "purchase_default"}, cloud
        for name, entry in table["types"].items():
            assert TYPE_FIELDS <= set(entry) <= TYPE_FIELDS | {"purchase"}, (cloud, name)
            assert set(entry.get("purchase", PURCHASE_MODELS)) <= set(PURCHASE_MODELS)
    for name, entry in doc["abstract"].items():
        assert set(entry) <= {"description", "gpu_type", "gpu_count", "gpu_memory_gb",
                              "gpu_type_aliases", "native"}, name


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_cloud_names_a_price_source_and_date(cloud: str) -> None:
    table = cloud_table(cloud)
    assert len(table.price_source) > 40 and table.note and table.currency == "USD"
    date = re.fullmatch(r"(\d{4})-(\d{2})", table.price_date)
    assert date, f"{cloud}: price_date {table.price_date!r} is not YYYY-MM"
    assert int(date.group(1)) >= 2023 and 1 <= int(date.group(2)) <= 12
    if cloud != "fake":  # remembered list prices: the file must say they are approximate
        assert "APPROXIMATE" in table.price_source


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_type_has_sane_facts(cloud: str) -> None:
    types = cloud_table(cloud).types
    assert types, cloud
    for t in types.values():
        assert t.price_per_hr is None or t.price_per_hr > 0, t
        assert t.vcpus > 0 and t.memory_gb > 0 and t.gpu_count >= 0, t
        assert (t.gpu_count > 0) == (t.gpu_memory_gb > 0) == bool(t.gpu_type), t
        assert all(isinstance(r, str) and r for r in t.regions), t
        if cloud in ("fake", "gcp"):  # Lambda and AWS leave regions to run time
            assert t.regions, t


def test_offer_and_cloud_offers() -> None:
    assert [o.name for o in cloud_offers("aws")] == list(cloud_table("aws").types)
    h100 = offer("lambda", "gpu_8x_h100_sxm5")
    assert h100 is not None and (h100.gpu_count, h100.gpu_type) == (8, "H100")
    assert offer("lambda", "gpu_9x_nothing") is None
    with pytest.raises(KeyError):
        cloud_offers("azure")


# -- the views the providers read -----------------------------------------------------------

def test_fake_provider_lists_exactly_the_fake_table() -> None:
    fake = FakeProvider()  # in-memory SQLite: nothing to clean up
    assert fake.list_instance_types() == cloud_offers("fake") == list(FAKE_CATALOG)
    assert FAKE_REGIONS == ("us-west-1", "us-east-1", "eu-central-1")


def test_aws_and_gcp_views_are_the_json_tables() -> None:
    aws = cloud_table("aws").types
    assert list(aws_catalog.GPU_TYPES) == list(aws)
    for name, shape in aws_catalog.GPU_TYPES.items():
        f = aws[name]
        assert shape == aws_catalog.GpuShape(f.gpu_type, f.gpu_count, f.gpu_memory_gb, f.vcpus,
                                             f.memory_gb, f.price_per_hr), name
    assert gcp_catalog.instance_types() == cloud_offers("gcp")
    assert list(gcp_catalog.MACHINE_TYPES) == list(cloud_table("gcp").types)


def test_lambda_reference_agrees_with_the_api_double() -> None:
    """The Lambda table against tests/fakes' copy of Lambda's /instance-types answers, read
    through the real provider, so gpu_type is named the way live offers name it."""
    import httpx

    from navarch_plan.providers.lambda_ import LambdaProvider
    from tests.fakes.lambda_server import FakeLambda

    fake = FakeLambda(api_key="sk-catalog")
    with LambdaProvider("lambda", "sk-catalog", base_url="http://lambda.test/api/v1",
                        transport=httpx.WSGITransport(app=fake)) as p:
        live = p.list_instance_types()
    ours = cloud_table("lambda").types
    assert live
    for o in live:
        f = ours[o.name]
        assert (o.gpu_type, o.gpu_count, o.vcpus, o.memory_gb) == \
            (f.gpu_type, f.gpu_count, f.vcpus, f.memory_gb), o.name
        assert o.price_per_hr == pytest.approx(f.price_per_hr), o.name


# -- packaging ---------------------------------------------------------------------------------

def test_catalog_is_read_once() -> None:
    assert cloud_table("gcp") is cloud_table("gcp")
    assert catalog._document.cache_info().currsize == 1


def test_catalog_json_is_shipped_in_the_wheel(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("navarch_plan-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("navarch_plan/data/catalog.json") == JSON_PATH.read_bytes()
    # A pure-Python wheel is importable as a zip: the loader must find the file inside it
    # (importlib.resources, not a path next to __file__), with the source tree off the path.
    probe = ("import navarch_plan.catalog.facts as c; assert '.whl' in c.__file__, c.__file__; "
             "print(len(c.cloud_offers('gcp')))")
    run = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, "
                          f"{str(wheel)!r}); {probe}"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) == len(cloud_table("gcp").types)


def test_every_built_in_provider_type_has_a_catalog_table() -> None:
    """The registry lists the built-in types once; the shipped catalog must have a table
    for each (and no table for a type that does not exist), and each type's name is the
    name it is registered under."""
    from navarch_plan.providers.registry import builtin_types

    types = builtin_types()
    assert set(types) == set(CLOUDS)
    assert all(kind.name == name for name, kind in types.items())


# -- how each type can be bought -----------------------------------------------------------

def test_gcp_types_record_how_they_can_be_bought_and_where_that_was_read() -> None:
    table = cloud_table("gcp")
    assert "https://cloud.google.com/compute/docs/accelerator-optimized-machines" in \
        table.purchase_source and "2025-06" in table.purchase_source
    not_on_demand = {n for n, t in table.types.items() if "on-demand" not in t.purchase}
    assert not_on_demand == {"a3-highgpu-1g", "a3-highgpu-2g", "a3-highgpu-4g",
                             "a3-ultragpu-8g", "a4-highgpu-8g"}
    assert table.types["a3-highgpu-1g"].purchase == {"spot", "flex-start"}
    assert table.types["a3-highgpu-8g"].purchase == set(PURCHASE_MODELS)
    # A cloud without purchase data is on-demand only, as before.
    assert {t.purchase for t in cloud_table("lambda").types.values()} == {
        frozenset({"on-demand"})}


def test_purchase_problem_says_how_a_type_can_be_bought() -> None:
    assert purchase_problem("gcp", "a3-highgpu-8g") is None
    assert purchase_problem("gcp", "a3-highgpu-1g", "spot") is None
    assert purchase_problem("gcp", "a3-highgpu-1g") == (
        "a3-highgpu-1g is not sold on-demand on gcp: only as spot, flex-start; see "
        "https://cloud.google.com/compute/docs/accelerator-optimized-machines")
    assert purchase_problem("gcp", "no-such-type") is None
