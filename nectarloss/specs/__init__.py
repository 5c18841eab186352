"""Loss specs: Python spec functions and JSON spec files.

A spec is a callable returning ``dict[str, LMLoss]``, the NectarGAN convention, so
both kinds go through ``LossManager.init_from_spec``::

    lm.init_from_spec(pix2pix, "extended")           # a Python spec function
    lm.init_from_spec(load_spec, "pix2pix_basic")    # a shipped JSON spec
    lm.init_from_spec(load_spec, "my_spec.json")     # your own file

JSON files go through one module per stage: :mod:`~nectarloss.specs.loader` reads them
and follows ``extends``, :mod:`~nectarloss.specs.validate` checks them against the
pydantic models (:mod:`~nectarloss.specs.models` and the ``*_models`` modules beside
it), :mod:`~nectarloss.specs.build` turns each entry into an ``LMLoss``, and
:mod:`~nectarloss.specs.dump` writes registered losses back as a spec. Every mistake
raises one :class:`SpecError` (:mod:`~nectarloss.specs.errors`) naming the file, the
JSON path and what was expected. :func:`spec_json_schema` gives the JSON Schema for
editors.
"""

from nectarloss.specs.build import build_noise_schedule
from nectarloss.specs.builtin import classification, diffusion, metric_triplet, pix2pix
from nectarloss.specs.dump import dump_noise_schedule, dump_spec
from nectarloss.specs.errors import SpecError
from nectarloss.specs.loader import available_specs, load_spec, loads_spec, validate_spec_file
from nectarloss.specs.validate import spec_json_schema

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
