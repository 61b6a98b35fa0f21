"""``TritonSession`` lives in batchml/inference/triton.py; this path stays importable.

Code written before batchml.inference became a package imports it from here.
"""

from batchml.inference.triton import TRITONCLIENT_INSTALL, Protocol, TritonSession

__all__ = ["TRITONCLIENT_INSTALL", "Protocol", "TritonSession"]
