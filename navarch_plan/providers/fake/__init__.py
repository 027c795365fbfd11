"""The fake cloud (provider), its SQLite file (db) and its fault queue (faults)."""

from navarch_plan.providers.fake.provider import FakeProvider

__all__ = ["FakeProvider"]
