"""`navarch validate` is offline by default: the schema, references and the catalogs
shipped with navarch, no credentials, no network, no provider built (a PR lint job
runs it without secrets); `--live` adds the clouds' own catalogs. A fresh folder (no
state/ yet) validates too."""

from __future__ import annotations

import json
import re
import shutil
from contextlib import ExitStack
from pathlib import Path

from tests.conftest import OPS_KEY, ROOT, Workdir
from tests.fakes.lambda_server import DEFAULT_CATALOG, FakeLambda, _offer, serve

# No credential of any cloud reaches the command: unset, or pointing nowhere.
NO_CREDENTIALS = {
    "LAMBDA_API_KEY": None, "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
    "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/gcp.json",
    "CLOUDSDK_CONFIG": "/nonexistent/gcloud",
    # Any network call would go here and fail.
    "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
}

CLOUDS = f"""\
version: 1
workspace: lint
providers:
  lam: {{type: lambda, api_key_env: LAMBDA_API_KEY}}
  gcp: {{type: gcp, project: my-project}}
  aws: {{type: aws, region: us-east-1, image_id: ami-0123456789abcdef0, endpoint_url: "http://127.0.0.1:9"}}
ssh_public_keys:
  ops: "{OPS_KEY}"
defaults:
  ssh_keys: [ops]
pools:
  a: {{provider: lam, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}}
  g: {{provider: gcp, instance_type: g2-standard-4, region: us-central1, zone: us-central1-a,
      nodes: 1}}
  w: {{provider: aws, instance_type: g5.xlarge, region: us-east-1, nodes: 1}}
"""


def test_validate_needs_no_credentials_and_no_network(work: Workdir) -> None:
    work.write(CLOUDS)
    result = work.run("validate", env=NO_CREDENTIALS)
    assert result.code == 0, result.err
    assert result.out.startswith("The configuration is valid: 3 nodes (3 pools, 0 named "
                                 "nodes) on 3 providers"), result.out
    assert "(offline: --live also asks the clouds)" in result.out
    assert result.err == ""
    # The control: --live builds the providers, and Lambda's needs its key.
    live = work.cli("validate", "--live", env=NO_CREDENTIALS)
    assert live.code == 1 and "LAMBDA_API_KEY is not set" in live.err, live.err


def test_offline_catalog_errors_name_their_place_and_a_close_match(work: Workdir) -> None:
    work.write(CLOUDS.replace("region: us-central1, zone: us-central1-a",
                              "region: us-centrall1, zone: us-centrall1-a")
               .replace("g5.xlarge", "g5.xlarg"))
    result = work.cli("validate", env=NO_CREDENTIALS)
    assert result.code == 1
    assert result.err.splitlines() == [
        "Error: navarch.yaml:13:52: pools.g.region: region 'us-centrall1' does not offer "
        "g2-standard-4 on gcp (did you mean 'us-central1'?) (regions: us-central1, us-east1, "
        "us-east4, us-west1, us-west4, europe-west1, europe-west4, asia-east1, "
        "asia-northeast1, asia-southeast1)",
        "Error: navarch.yaml:15:22: pools.w.instance_type: instance type 'g5.xlarg' is not in "
        "navarch's aws catalog (provider aws) (did you mean 'g5.xlarge'?)",
    ]


def test_a_lambda_type_navarch_does_not_know_is_a_warning_offline(work: Workdir) -> None:
    """Lambda adds types before navarch's table does: offline it is only a warning, and
    --live asks Lambda, whose list decides."""
    catalog = {**DEFAULT_CATALOG,
               "gpu_2x_b300": _offer("gpu_2x_b300", "B300 (288 GB SXM6)", 900, 2, 52, 900,
                                     ["us-west-1"])}
    with ExitStack() as stack:
        fake = FakeLambda(api_key="sk-validate", catalog=catalog)
        base_url = stack.enter_context(serve(fake))
        work.write(CLOUDS.replace("gpu_1x_a10", "gpu_2x_b300").replace(
            "api_key_env: LAMBDA_API_KEY}", f"api_key_env: LAMBDA_API_KEY, "
            f"base_url: '{base_url}'}}"))
        offline = work.cli("validate", env=NO_CREDENTIALS)
        assert fake.log == [], "offline validate called Lambda"
        live = work.cli("validate", "--live", env={"LAMBDA_API_KEY": "sk-validate",
                                                   "AWS_ACCESS_KEY_ID": "testing",
                                                   "AWS_SECRET_ACCESS_KEY": "testing"})
        assert [r.path for r in fake.log] == ["/instance-types"]
        work.write(work.path.joinpath("navarch.yaml").read_text()
                   .replace("gpu_2x_b300", "gpu_1x_gh200"))  # shipped, not listed live
        gone = work.cli("validate", "--live", env={"LAMBDA_API_KEY": "sk-validate"})
    assert offline.code == 0, offline.err
    assert offline.err.splitlines() == [
        "Warning: navarch.yaml:12:22: pools.a.instance_type: instance type 'gpu_2x_b300' is "
        "not in navarch's lambda catalog (provider lam); `navarch validate --live` asks the "
        "cloud"]
    assert live.code == 0 and live.err == "", live.err
    assert "(offline" not in live.out
    assert gone.code == 1
    assert re.search(r"^Error: navarch\.yaml:12:22: pools\.a\.instance_type: instance type "
                     r"'gpu_1x_gh200' is not offered by lam", gone.err, re.M), gone.err


def _readme_config() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"## The configuration file.*?```yaml\n(.*?)```", readme, re.S)
    assert match, "the README's config block moved"
    return match.group(1)


def test_the_readmes_config_validates_in_a_fresh_folder(tmp_path: Path) -> None:
    work = Workdir(tmp_path)
    shutil.rmtree(tmp_path / "state")  # a fresh checkout: nothing has made state/ yet
    work.write(_readme_config())
    result = work.cli("validate")
    assert result.code == 0, result.err
    assert "state at state/research.json" in result.out
    assert not (tmp_path / "state").exists(), "validate wrote nothing"
    as_json = work.cli("validate", "--json")
    assert as_json.json()["valid"] is True and as_json.json()["error_count"] == 0


def test_validate_json_lists_warnings_with_their_place(work: Workdir) -> None:
    work.write(CLOUDS.replace("us-east-1, nodes: 1}", "us-east-1, nodes: 1, user_data: "
                                                        "'apt-get install x'}")
               .replace("workspace: lint\n", ""))
    result = work.cli("validate", "--json", env=NO_CREDENTIALS)
    document = result.json()
    assert result.code == 0 and document["valid"] is True
    assert document["error_count"] == 0 and document["warning_count"] == 2
    workspace, user_data = document["diagnostics"]
    assert workspace["severity"] == "warning" and "no `workspace:`" in workspace["summary"]
    assert user_data["severity"] == "warning" and user_data["path"] == "pools.w.user_data"
    assert user_data["range"] == {"filename": "navarch.yaml",
                                  "start": {"line": 14, "column": 77}}
    json.dumps(document)  # plain JSON throughout


def test_validate_reads_the_pub_files_the_nodes_use(work: Workdir) -> None:
    """A missing or wrong .pub file is found by validate (a PR lint job), each with its
    place, not by apply at the first launch; a key file no node uses is not read."""
    (work.path / "keys").mkdir()
    (work.path / "keys" / "ops.pub").write_text(OPS_KEY + "\n")
    (work.path / "keys" / "bob.pub").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    text = ("version: 1\nworkspace: lint\n"
            "providers: {sim: {type: fake}}\n"
            "ssh_public_keys:\n"
            "  ops: keys/ops.pub\n"
            "  alice: keys/alice.pub\n"
            "  bob: keys/bob.pub\n"
            "  unused: keys/nobody.pub\n"
            "pools:\n"
            "  w: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1,\n"
            "      nodes: 1, ssh_keys: [ops, alice, bob]}\n")
    work.write(text)
    result = work.cli("validate")
    assert result.code == 1 and result.out == ""
    errors = result.err.strip().splitlines()
    assert errors[0] == ("Error: navarch.yaml:6:3: ssh_public_keys.alice: alice: cannot read "
                         "keys/alice.pub: No such file or directory")
    assert errors[1].startswith("Error: navarch.yaml:7:3: ssh_public_keys.bob: bob: "
                                "keys/bob.pub is not an OpenSSH public key")
    assert len(errors) == 2, "ops.pub is fine; nobody.pub is not used"
    (work.path / "keys" / "alice.pub").write_text(OPS_KEY + "\n")
    work.write(text.replace(", bob]", "]"))
    assert work.cli("validate").code == 0


def test_a_key_path_under_home_is_read_from_home(work: Workdir, tmp_path: Path) -> None:
    """`alice: ~/keys/alice.pub` (as docs/clouds/gcp.md writes it) is the file under the
    HOME of the environment navarch runs in, not a folder named `~` beside the config."""
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    text = ("version: 1\nworkspace: lint\n"
            "providers: {sim: {type: fake}}\n"
            "ssh_public_keys:\n"
            "  alice: ~/keys/alice.pub\n"
            "pools:\n"
            "  w: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1,\n"
            "      nodes: 1, ssh_keys: [alice]}\n")
    work.write(text)
    missing = work.cli("validate", env={"HOME": str(home)})
    assert missing.code == 1 and missing.err.strip() == (
        f"Error: navarch.yaml:5:3: ssh_public_keys.alice: alice: cannot read "
        f"{home}/keys/alice.pub: No such file or directory")
    (home / "keys" / "alice.pub").write_text(OPS_KEY + "\n")
    found = work.cli("validate", env={"HOME": str(home)})
    assert found.code == 0, found.err
    unset = work.cli("validate", env={"HOME": None})
    assert unset.code == 1 and unset.err.strip() == (
        "Error: navarch.yaml:5:3: ssh_public_keys.alice: alice: ~/keys/alice.pub: ~/ is "
        "your HOME, but HOME is not set")
    work.write(text.replace("~/keys", "~alice/keys"))
    other = work.cli("validate", env={"HOME": str(home)})
    assert other.code == 1 and other.err.strip().endswith(
        "alice: ~alice/keys/alice.pub: only a leading ~/ (your HOME) is expanded; write the "
        "full path")
