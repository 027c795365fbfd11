"""How a fake cloud's row reads at a given moment, apart from the calls that read it:
the lag simulation. A new instance stays unseen until its `visible_at`; a terminated one
is listed as `terminating` while `terminate_lag` lasts, then is gone; a provisioning one
turns running at its `ready_at`. Pure: the caller passes the time."""

from __future__ import annotations

from typing import Any

from navarch_plan.catalog.facts import FAKE_CATALOG
from navarch_plan.model import Node
from navarch_plan.providers.fake.db import row_to_node

__all__ = ["COLUMNS", "TYPES", "lagging_filter", "shown_node", "row_as_node"]

TYPES = {t.name: t for t in FAKE_CATALOG}
#: The columns every row read here has, in this order (the last three drive the lag).
COLUMNS = ("id, name, region, zone, instance_type, status, ip, labels, gpu_count, ready_at,"
           " visible_at, deleted, gone_at")


def lagging_filter(now: float, terminate_lag: float) -> tuple[str, tuple[float, ...]]:
    """The SQL (and its arguments) a listing adds to `deleted = 0`: none not yet
    visible, and the recently terminated while terminate lag lasts."""
    sql = " AND visible_at <= ?" + (" OR (deleted = 1 AND gone_at > ?)" if terminate_lag else "")
    return sql, (now,) + ((now - terminate_lag,) if terminate_lag else ())


def shown_node(provider: str, row: tuple[Any, ...], now: float,
               terminate_lag: float) -> Node | None:
    """The row as listings and gets show it now, or None when they show nothing:
    not yet visible, or deleted longer ago than terminate_lag."""
    visible_at, deleted, gone_at = row[-3:]
    if now < visible_at or (deleted and now >= gone_at + terminate_lag):
        return None
    return row_as_node(provider, row, now, terminate_lag)


def row_as_node(provider: str, row: tuple[Any, ...], now: float, terminate_lag: float) -> Node:
    """The row as the instance is, whatever listings show (a launch's own reply)."""
    itype, word, gpus, ready_at, _, deleted, gone_at = (row[4], row[5], *row[8:])
    if deleted:
        word = "terminating" if now < gone_at + terminate_lag else "terminated"
    elif word == "provisioning" and now >= ready_at:
        word = "running"
    offer = TYPES.get(itype)
    return row_to_node(provider, row, word,
                       gpus if gpus is not None else (offer.gpu_count if offer else 0),
                       offer.gpu_type if offer else "")
