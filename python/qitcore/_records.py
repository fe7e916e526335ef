"""Plain values from qitcore's result classes, for JSON and other serialisers.

The result types of the Rust core are Python classes whose fields are read-only attributes
(getset descriptors); :func:`as_dict` reads them from the class itself, so the list of fields is
written once, in the Rust struct.
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["as_dict", "field_names"]


def field_names(cls: type) -> list[str]:
    """The fields of a result class (sorted: PyO3 does not keep the declared order); none for
    any other class (builtins have getset descriptors too, such as ``float.real``)."""
    if not cls.__module__.startswith("qitcore."):
        return []
    return sorted(
        name
        for name, attr in vars(cls).items()
        if not name.startswith("_") and isinstance(attr, types.GetSetDescriptorType)
    )


def as_dict(value: Any) -> Any:
    """``value`` with every result object and dataclass turned into a dict of its fields
    (recursively), lists and tuples into lists of plain values; other values as they are."""
    fields = field_names(type(value))
    if fields:
        return {name: as_dict(getattr(value, name)) for name in fields}
    # dataclasses.is_dataclass's own test, without importing dataclasses (and inspect) for the
    # result classes, which are not dataclasses.
    if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
        import dataclasses

        return {f.name: as_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [as_dict(v) for v in value]
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    return value
