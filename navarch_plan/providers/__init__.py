"""Providers: the interface (base.py: Provider, its optional capabilities, ProviderType),
the registry of types, and one sub-package per built-in cloud, each split the same way:

    kind.py      the provider type: options schema, label rules, launch checks, defaults
                 (no SDK import: the config is checked against it without building)
    provider.py  the client, which imports the cloud's SDK
    catalog.py   the cloud's instance-type facts (aws, gcp)

The design's `lambda_.py`, `gcp.py` and `aws.py` grew into these packages once each held a
type, a client and a catalog. The fake cloud ships here too, like httpx's mock transport."""
