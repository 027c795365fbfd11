"""Providers: the fake cloud ships here; real clouds import their SDKs lazily."""
