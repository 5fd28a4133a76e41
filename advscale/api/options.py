"""Request-field declarations for front ends (the command line builds its options from them).

A re-export of :mod:`advscale.core.options`, so ``advscale.cli`` reaches them through the API.
"""

from __future__ import annotations

from advscale.core.options import (
    PARSERS,
    OptionSpec,
    cli_fields,
    field_spec,
    flag_of,
    option,
    parse_count,
    parse_fields,
    parse_fraction,
    parse_kwargs,
    parse_shard,
    parse_value,
    seed_option,
    spec_of,
)

__all__ = ["PARSERS", "OptionSpec", "cli_fields", "field_spec", "flag_of", "option",
           "parse_count", "parse_fields", "parse_fraction",
           "parse_kwargs", "parse_shard", "parse_value", "seed_option",
           "spec_of"]
