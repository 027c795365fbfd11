"""The configuration: its types (types), how a file becomes one (load, yamlpos, build,
placements) and what it desires (desired). Pure: nothing here reads a file or calls a
cloud; the engine reads the file and hands the text in."""

from navarch_plan.config.load import PartialConfigErrors, parse_config
from navarch_plan.config.types import Config, Context, ProviderConfig, StateConfig

__all__ = ["Config", "Context", "PartialConfigErrors", "ProviderConfig", "StateConfig",
           "parse_config"]
