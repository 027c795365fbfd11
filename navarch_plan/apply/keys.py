"""SSH public keys as key material, read at the edge: the config keeps key text as
written and only joins a .pub file's path to its folder; apply reads the file here,
before any cloud call."""

from __future__ import annotations

from navarch_plan.config.desired import DesiredNode
from navarch_plan.config.load import is_public_key, public_key_problem
from navarch_plan.errors import ApplyError

__all__ = ["public_key_text", "read_public_keys"]


def public_key_text(value: str) -> tuple[str, str | None]:
    """One ssh_public_keys value as key material: (the key, None), or ("", why not) for
    a .pub file that cannot be read or holds no public key. Key text is as written; a
    file (the config only joined its path) is read here, at the edge."""
    if is_public_key(value):
        return value, None
    try:
        with open(value, encoding="utf-8") as f:
            text = f.read(16384).strip()
    except OSError as exc:
        return "", f"cannot read {value}: {exc.strerror}"
    except UnicodeDecodeError:
        return "", f"{value} is not text"
    why = public_key_problem(text)
    return (text, None) if why is None else ("", f"{value} {why}")


def read_public_keys(node: DesiredNode) -> dict[str, str]:
    """The node's ssh_public_keys as key material. Raises ApplyError, before any cloud
    call, for a file that cannot be read or holds no public key."""
    keys = {}
    for name, value in node.public_keys.items():
        keys[name], why = public_key_text(value)
        if why is not None:
            raise ApplyError(f"ssh_public_keys.{name}: {why}")
    return keys
