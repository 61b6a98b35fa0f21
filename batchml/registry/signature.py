"""The model's signature, read off the input example the user gives at publish time.

A deployment needs to know, without the training code, what to feed the model:
the ordered input names, their dtypes, their shapes with the batch dimension
left symbolic, and the names of the variables along the last axis (``pt``,
``eta``...). Deriving all that from one real example keeps it honest, and the
example itself is stored (as ``.npz``, readable with numpy alone) so a packager
can check an exported model against the original.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from batchml.errors import InvalidValue

BATCH = "batch"


def as_arrays(example: Any, input_names: Sequence[str] | None) -> dict[str, Any]:
    """{input name: numpy array} from a tensor, an array, a sequence or a mapping of them."""
    if isinstance(example, Mapping):
        items = list(example.items())
    else:
        values = list(example) if isinstance(example, (tuple, list)) else [example]
        names = list(input_names or [f"input_{i}" for i in range(len(values))])
        if len(names) != len(values):
            raise InvalidValue(
                f"input_names {names} has {len(names)} names for {len(values)} example inputs",
                hint="give one name per input, in the order the model takes them",
            )
        items = list(zip(names, values, strict=True))
    return {str(name): _to_numpy(name, value) for name, value in items}


def _to_numpy(name: object, value: Any) -> Any:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor, without importing torch to ask
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim == 0 or array.dtype == object:
        raise InvalidValue(
            f"input example {name!r} is not a batch of numbers (shape {array.shape}, "
            f"dtype {array.dtype})",
            hint="give a tensor or array whose first dimension is the batch",
        )
    return array


def signature_of(
    arrays: Mapping[str, Any], variables: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """The JSON signature: one entry per input, in order, with a symbolic batch dimension."""
    variables = dict(variables or {})
    unknown = set(variables) - set(arrays)
    if unknown:
        raise InvalidValue(
            f"variables given for {sorted(unknown)}, which are not inputs",
            hint=f"the inputs are {list(arrays)}",
        )
    inputs = []
    for name, array in arrays.items():
        entry: dict[str, Any] = {
            "name": name,
            "dtype": str(array.dtype),
            "shape": [BATCH, *array.shape[1:]],
        }
        if name in variables:
            names = [str(v) for v in variables[name]]
            if array.ndim < 2 or len(names) != array.shape[-1]:
                raise InvalidValue(
                    f"{len(names)} variable names for input {name!r} of shape {list(array.shape)}",
                    hint="give one name per entry of the last dimension",
                )
            entry["variables"] = names
        inputs.append(entry)
    return {"inputs": inputs}


def npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    """The input example as an uncompressed .npz (keys are the input names)."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
