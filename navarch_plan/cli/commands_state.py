"""State surgery: `state list|show|rm|import|adopt|migrate`, and `force-unlock`. The
return value is the exit code."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from navarch_plan.apply.takeover import Taken, TakeOver
from navarch_plan.cli.common import IO, config_for, engine_for
from navarch_plan.engine import Engine, load_config
from navarch_plan.errors import UsageError
from navarch_plan.render import render_json
from navarch_plan.render.state import state_list_document
from navarch_plan.state.backends import StateStore, migrate_state, open_store, state_from_url
from navarch_plan.state.lock import FileLock, LockInfo
from navarch_plan.state.lock_info import holder_to_force
from navarch_plan.state.ops import Remove
from navarch_plan.state.stores.local import LocalStateStore
from navarch_plan.words import plural

__all__ = ["cmd_state", "cmd_force_unlock"]


def _lock_to_release(store: StateStore, lock_id: str) -> LockInfo:
    """The lock held on `store`, when it carries `lock_id`; LockError (in force_unlock's
    words) when none is held or another is. Read as each backend's force_unlock reads it."""
    if isinstance(store, LocalStateStore):
        lock = FileLock(store.path)
        return holder_to_force(lock.read(), lock_id, lock.where)
    from navarch_plan.state.stores.s3 import S3StateStore
    from navarch_plan.state.stores.s3_lock import S3Lock

    assert isinstance(store, S3StateStore), type(store)  # the only other backend
    s3_lock = S3Lock(store.bucket, store.key)
    found = s3_lock.read()
    return holder_to_force(found[0] if found else None, lock_id, s3_lock.where)


def cmd_state(args: argparse.Namespace, io: IO) -> int:
    if args.state_command == "migrate":
        return cmd_state_migrate(args, io)
    engine = engine_for(args, io)
    if args.state_command in ("list", "show"):
        doc = engine.store.load()
        if args.state_command == "list":
            if args.format == "json":
                io.out(render_json(state_list_document(doc.to_json())))
            elif doc.nodes:  # one address a line; nothing at all for none
                io.out("\n".join(sorted(doc.nodes)))
            return 0
        record = doc.nodes.get(args.address)
        if record is None:
            raise UsageError(f"{args.address} is not in state")
        io.out(render_json({"address": args.address, **record.to_json()}))
        return 0
    if args.state_command in ("import", "adopt"):
        return cmd_state_take_over(args, io, engine)
    with engine.locked("state rm") as doc:
        if args.address not in doc.nodes:
            raise UsageError(f"{args.address} is not in state")
        engine.store.record(Remove(args.address))
    io.out(f"Removed {args.address} from state. The instance itself was not touched; while "
           "it carries this workspace's labels, the next plan adopts or deletes it.")
    return 0


def cmd_state_take_over(args: argparse.Namespace, io: IO, engine: Engine) -> int:
    """`state import ADDRESS ID` and `state adopt --lineage L` (takeover.py)."""
    taken = Taken()
    with engine.locked(f"state {args.state_command}") as doc:
        takeover = TakeOver(engine.config.workspace, engine.config.desired, engine.providers,
                            doc, engine.clock)
        if args.state_command == "import":
            node = takeover.find(args.instance_id, args.provider)
            ops = takeover.import_one(args.address, node, taken)
        else:
            engine.refresh()
            ops = takeover.adopt(args.lineage, list(engine.observed.by_id.values()), taken)
        if ops:
            engine.store.record(*ops)
    for address, node_id in taken.recorded:
        io.out(f"Recorded {node_id} as {address}.")
    for node_id, why in taken.left:
        io.out(f"Took over {node_id} (now this state's), not recorded: {why}; the next plan "
               "adopts it or, if nothing desires it, deletes it.")
    if taken.unlabelled:
        io.err(f"Warning: {', '.join(taken.unlabelled)} could not be re-labelled (the cloud "
               "has no label API): state holds them by id.")
    if not taken.recorded and not taken.left:
        raise UsageError(f"no instance of workspace {engine.config.workspace} carries "
                         f"lineage {args.lineage}")
    return 0


def cmd_state_migrate(args: argparse.Namespace, io: IO) -> int:
    config = load_config(args.config)
    io.hide(config.secrets(os.environ))
    # --to takes the config's S3 region and endpoint, even when --state overrides it.
    to = state_from_url(args.to, config.state)
    if args.state:
        config = replace(config, state=state_from_url(args.state, config.state))
    source = open_store(config.state, config.workspace)
    target = open_store(to, config.workspace)
    doc, written = migrate_state(source, target, args.lock_timeout)
    what = f"lineage {doc.lineage}, serial {doc.serial}"
    if not written:
        io.out(f"{target.path} already holds this state ({what}); nothing to copy.")
        return 0
    io.out(f"Copied the state ({what}, {plural(len(doc.nodes), 'node')}) from {source.path} "
           f"to {target.path}; {source.path} was left as it was. To use the copy, point "
           f"`state:` in {config.file} at it, or pass --state {args.to}.")
    return 0


def cmd_force_unlock(args: argparse.Namespace, io: IO) -> int:
    config = config_for(args, io)
    store = open_store(config.state, config.workspace)
    # Checked before asking: no question about a lock that is not there or not this one.
    # force_unlock checks again (the lock may change while the user answers).
    held = _lock_to_release(store, args.lock_id)
    if not args.force and not io.ask(
            f"Do you really want to force-unlock the state {store.path}?\n"
            f"  Its lock: {held.describe()}.\n"
            "  navarch will then no longer keep other runs from changing this state at the "
            "same time.\n  Only 'yes' will be accepted to confirm.", "--force"):
        io.out("force-unlock cancelled.")
        return 1
    holder = store.force_unlock(args.lock_id, force=args.force)
    io.out(f"Released the lock on {store.path} ({holder.describe()}).")
    return 0
