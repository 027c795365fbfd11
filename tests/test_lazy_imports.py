"""Cloud SDKs are imported only when a config uses their provider (DESIGN section 8),
and rich only when output goes to a terminal (colour and the live apply view).

Each check runs in a fresh interpreter, since the test process itself has long since
imported boto3, google and httpx through other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pexpect

from tests.conftest import spawn_in_pty

HEAVY = ("boto3", "botocore", "google", "httpx")

# Runs navarch's own entry point with the given argv, then reports what got imported.
PROBE = f"""
import json, sys
from navarch_plan.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # argparse's --version exits
    code = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
rich = sorted(m for m in sys.modules if m.split(".")[0] == "rich")
print("\\n" + json.dumps({{"code": code, "heavy": heavy, "rich": rich}}))
"""


def probe(cwd: Path, *argv: str) -> tuple[int, list[str], list[str], str]:
    """Exit code, cloud SDK modules, rich modules, and the output before the report.
    stdout is a pipe here, so navarch must choose plain output."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    *out, last = proc.stdout.rstrip("\n").split("\n")
    report = json.loads(last)
    return report["code"], report["heavy"], report["rich"], "\n".join(out)


def write_config(folder: Path, providers: dict, pool: dict) -> Path:
    (folder / "state").mkdir(exist_ok=True)
    doc = {"version": 1, "workspace": "lazy", "providers": providers,
           "defaults": {"ssh_keys": ["ops"]}, "pools": {"workers": {"nodes": 1, **pool}}}
    path = folder / "navarch.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def test_fake_only_plan_imports_no_cloud_sdk(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"sim": {"type": "fake", "path": "state/cloud.db"}},
        {"provider": "sim", "instance_type": "gpu_1x_a10", "region": "us-west-1"})
    code, heavy, rich, out = probe(tmp_path, "plan", "-c", str(config))
    assert code == 0, out
    assert "Plan: 1 to add" in out, "the plan really ran"
    assert heavy == []
    assert rich == [], "a plan that is not on a terminal loads no rich"


def test_version_imports_no_cloud_sdk(tmp_path: Path) -> None:
    code, heavy, rich, out = probe(tmp_path, "--version")
    assert code == 0 and out.startswith("navarch "), out
    assert heavy == []
    assert rich == []


def test_the_probe_sees_an_sdk_when_a_config_uses_one(tmp_path: Path) -> None:
    """Control: an aws config does load boto3, so an empty list above means something.
    `validate --live` builds the provider and reads its static catalog; no network call.
    Plain `validate` is offline: it builds no provider, so it loads no SDK at all."""
    config = write_config(
        tmp_path, {"ec2": {"type": "aws", "region": "us-east-1",
                           "image_id": "ami-0123456789abcdef0"}},
        {"provider": "ec2", "instance_type": "g5.xlarge"})
    code, heavy, _, out = probe(tmp_path, "validate", "-c", str(config))
    assert code == 0 and "The configuration is valid" in out, out
    assert heavy == [], "offline validate builds no provider"
    code, heavy, _, out = probe(tmp_path, "validate", "--live", "-c", str(config))
    assert code == 0, out
    assert "boto3" in heavy and "botocore" in heavy
    assert not any(m.split(".")[0] in ("google", "httpx") for m in heavy), heavy


def test_the_probe_sees_rich_when_a_plan_is_on_a_terminal(tmp_path: Path) -> None:
    """Control for the rich checks above: the same plan in a pseudo-terminal loads it."""
    config = write_config(
        tmp_path, {"sim": {"type": "fake", "path": "state/cloud.db"}},
        {"provider": "sim", "instance_type": "gpu_1x_a10", "region": "us-west-1"})
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    child = spawn_in_pty([sys.executable, "-c", PROBE, "plan", "-c", str(config)], tmp_path,
                         {**env, "TERM": "xterm"}, columns=80)
    child.expect(pexpect.EOF)
    report = json.loads(child.before.strip().splitlines()[-1])
    assert report["code"] == 0 and "rich.console" in report["rich"]


def test_instance_types_with_s3_state_does_not_open_the_state(tmp_path: Path) -> None:
    """instance-types never touches state, so an S3 state config must not load boto3."""
    config = write_config(
        tmp_path, {"sim": {"type": "fake"}},
        {"provider": "sim", "instance_type": "gpu_1x_a10", "region": "us-west-1"})
    doc = json.loads(config.read_text())
    doc["state"] = {"backend": "s3", "bucket": "b", "key": "lazy.json", "region": "us-east-1",
                    "endpoint_url": "http://127.0.0.1:9"}
    config.write_text(json.dumps(doc))
    code, heavy, _, out = probe(tmp_path, "instance-types", "-c", str(config))
    assert code == 0 and "gpu_1x_a10" in out, out
    assert heavy == []
