"""The demo's sample generator, where it used to be: ``batchml.demo.sample`` is its home.

Kept so that scripts which write a sample with ``batchml.data.synthetic``
(as examples/analysis/README.md once showed) keep working.
"""

from batchml.demo.sample import FLAT_FEATURES, SampleFiles, generate_events, write_sample

__all__ = ["FLAT_FEATURES", "SampleFiles", "generate_events", "write_sample"]
