"""Loss specs: Python spec functions and JSON spec files.

A spec is a callable returning ``dict[str, LMLoss]``, the NectarGAN convention, so
both kinds go through ``LossManager.init_from_spec``::

    lm.init_from_spec(pix2pix, "extended")           # a Python spec function
    lm.init_from_spec(load_spec, "pix2pix_basic")    # a shipped JSON spec
    lm.init_from_spec(load_spec, "my_spec.json")     # your own file

JSON files are validated by the pydantic models in :mod:`nectarloss.specs.models`;
every mistake raises one :class:`SpecError` naming the file, the JSON path and what was
expected. :func:`dump_spec` writes registered losses back as a spec, and
:func:`spec_json_schema` gives the JSON Schema for editors.
"""

from nectarloss.specs.builtin import classification, diffusion, metric_triplet, pix2pix
from nectarloss.specs.loader import (
    SpecError,
    available_specs,
    build_noise_schedule,
    dump_noise_schedule,
    dump_spec,
    load_spec,
    loads_spec,
    spec_json_schema,
    validate_spec_file,
)

__all__ = [
    "SpecError",
    "available_specs",
    "build_noise_schedule",
    "classification",
    "diffusion",
    "dump_noise_schedule",
    "dump_spec",
    "load_spec",
    "loads_spec",
    "metric_triplet",
    "pix2pix",
    "spec_json_schema",
    "validate_spec_file",
]
