"""SSH public keys as key material, read at the edge: the config keeps key text as
written and only joins a .pub file's path to its folder; apply reads the file here,
before any cloud call."""

from __future__ import annotations

from navarch_plan.config.desired import DesiredNode
from navarch_plan.config.load import is_public_key, public_key_problem
from navarch_plan.errors import ApplyError

__all__ = ["read_public_keys"]


def read_public_keys(node: DesiredNode) -> dict[str, str]:
    """The node's ssh_public_keys as key material: key text as written, a .pub file read
    here, at the edge (the config only joined its path). Raises ApplyError, before any
    cloud call, for a file that cannot be read or holds no public key."""
    keys = {}
    for name, value in node.public_keys.items():
        if is_public_key(value):
            keys[name] = value
            continue
        try:
            with open(value, encoding="utf-8") as f:
                text = f.read(16384).strip()
        except OSError as exc:
            raise ApplyError(f"ssh_public_keys.{name}: cannot read {value}: "
                             f"{exc.strerror}") from None
        if (why := public_key_problem(text)) is not None:
            raise ApplyError(f"ssh_public_keys.{name}: {value} {why}")
        keys[name] = text
    return keys


