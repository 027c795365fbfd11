"""What a plan says about capacity the clouds report live: a pool whose launches have
nowhere with capacity now is told in a warning, so a PR reviewer sees it before the
apply fails. Only clouds that answer live (Lambda's instance types) mark candidates;
a plan never skips one for it (capacity comes and goes by the minute). Pure."""

from __future__ import annotations

from collections.abc import Sequence

from navarch_plan.plan import Action, ActionKind
from navarch_plan.words import plural

__all__ = ["capacity_warnings"]

_LAUNCHING = (ActionKind.CREATE, ActionKind.REPLACE)


def capacity_warnings(actions: Sequence[Action]) -> list[str]:
    """One warning per group whose launches have no candidate with capacity now."""
    stranded: dict[str, list[Action]] = {}
    for action in actions:
        if action.action in _LAUNCHING and action.candidates and not action.new_node_id \
                and all(c.get("capacity") is False for c in action.candidates):
            stranded.setdefault(action.group, []).append(action)
    return [_warning(group, launches) for group, launches in stranded.items()]


def _warning(group: str, launches: list[Action]) -> str:
    places = sorted({f"{c['provider']}/{c['region']} {c['instance_type']}"
                     for a in launches for c in a.candidates})
    addresses = ", ".join(a.address for a in launches[:3]) + (
        f" and {len(launches) - 3} more" if len(launches) > 3 else "")
    return (f"{group}: no candidate of {plural(len(launches), 'launch', 'launches')} "
            f"({addresses}) has capacity now, as the cloud lists it ({', '.join(places)}): "
            "apply tries them in order and fails where none has capacity by then")
