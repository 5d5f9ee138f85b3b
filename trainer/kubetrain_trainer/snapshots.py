"""A model's weights copied into memory now, written as `.weights.h5` later.

Why: `model.save_weights` at each epoch end held up training about 17 ms on the
built-in mlp (Keras 3.15.1, 2 CPU cores), 3% of its 0.6 s epoch. Few of those
milliseconds are bytes: about 6 go to a Keras cache that never hits (below),
about 4 to Keras' Python walk of the model and its variable reads, and the rest
to h5py's per-dataset calls. `take` runs Keras' own walk into memory on the
training thread (about 4 ms: the walk, and numpy copies of the values), so what
is saved is exactly what `save_weights` would save at that point; the h5py
write can then run on another thread while training goes on. The file is the
same tree, attributes and values `save_weights` writes, so `load_weights` reads
it as usual.

The walk uses Keras internals (`saving_lib._save_state`, `H5IOStore`), so it
is used only for Keras versions in `VERIFIED_KERAS_VERSIONS` (tested by
tests/trainer/test_snapshots.py). Other versions, and tf_keras models
(parameter_server), fall back to `save_weights` itself, on the training thread.

The Keras cache: `saving_lib.get_attr_skipset` stores each type's attribute
skip set under `saving_attr_skipset_<type>` but looks it up under
`saving_attr_skiplist_<type>`, so every save builds throw-away Layer and
Optimizer objects (with TensorFlow variables). `_cache_skipsets` stores the
sets under the key that is read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

#: Keras versions whose saving internals `take` was verified against.
VERIFIED_KERAS_VERSIONS: frozenset[str] = frozenset({"3.15.1"})

_SKIPSET_TYPES = (
    "Operation",
    "Layer",
    "Functional",
    "Sequential",
    "Metric",
    "Optimizer",
    "Loss",
    "Cross",
    "Feature",
)


class Snapshot(Protocol):
    """Weights taken at one point of training; `write` may run on any thread."""

    def write(self, path: str) -> None:
        """Write them as a Keras `.weights.h5` file at local `path`."""
        ...


@dataclass
class _Group:
    """One `H5IOStore.make` entry: an h5 group `<path>/vars` and its datasets."""

    path: str
    metadata: dict[str, Any] | None
    values: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Recorded:
    """What Keras' save walk stored, as numpy copies; no TensorFlow needed to write it."""

    groups: list[_Group]

    def write(self, path: str) -> None:
        import h5py

        with h5py.File(path, "w") as h5:
            for group in self.groups:
                _write_group(h5, group)


def _write_group(h5: Any, group: _Group) -> None:
    """As `H5IOStore`: a group exists once it has metadata or a value."""
    if not group.metadata and not group.values:
        return
    parent = h5.create_group(group.path) if group.path else h5
    vars_ = parent.create_group("vars")
    for key, value in (group.metadata or {}).items():
        vars_.attrs[key] = value
    for key, value in group.values.items():
        if value.dtype.name == "bfloat16":
            vars_.create_dataset(key, data=value).attrs["dtype"] = "bfloat16"
        else:
            vars_[key] = value


class Saved:
    """The fallback: `save_weights` wrote the file at once into a private temp dir."""

    def __init__(self, model: Any) -> None:
        self._dir = tempfile.mkdtemp(prefix="kubetrain-snapshot-")
        self._file = os.path.join(self._dir, "snapshot.weights.h5")
        try:
            model.save_weights(self._file)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def write(self, path: str) -> None:
        try:
            shutil.move(self._file, path)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


def take(model: Any) -> Snapshot:
    """The model's and optimizer's weights as `save_weights` would save them now.

    Call it on the training thread: it reads the variables.
    """
    if not _recordable(model):
        return Saved(model)
    recorded = _record(model)
    _cache_skipsets()
    return recorded


def _recordable(model: Any) -> bool:
    """A Keras 3 model, with a Keras version whose save walk was verified."""
    try:
        import keras
    except ImportError:
        return False
    return keras.__version__ in VERIFIED_KERAS_VERSIONS and isinstance(model, keras.Model)


def _record(model: Any) -> Recorded:
    from keras.src.saving import saving_lib

    store = _recorder_class()()
    saving_lib._save_state(
        model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set()
    )
    return Recorded(store.groups)


def _recorder_class() -> type:
    """An in-memory `H5IOStore` (Keras' save walk accepts only its own store types)."""
    from keras.src import backend
    from keras.src.saving import saving_lib

    class Recorder(saving_lib.H5IOStore):  # type: ignore[misc]
        def __init__(self) -> None:  # no h5 file: nothing of the base is used
            self.mode = "w"
            self.groups: list[_Group] = []

        def __bool__(self) -> bool:
            return True

        def make(self, path: str, metadata: dict[str, Any] | None = None) -> Recorder:
            self.groups.append(_Group(path, dict(metadata) if metadata else None))
            return self

        def __setitem__(self, key: str, value: Any) -> None:
            # A copy: the optimizer updates the variables in place as training goes on.
            self.groups[-1].values[key] = np.array(backend.convert_to_numpy(value), copy=True)

        def __len__(self) -> int:
            return len(self.groups[-1].values) if self.groups else 0

        def keys(self) -> Any:
            return self.groups[-1].values.keys() if self.groups else {}.keys()

        def __contains__(self, key: object) -> bool:
            return bool(self.groups) and key in self.groups[-1].values

    return Recorder


def _cache_skipsets() -> None:
    """Store each computed skip set under the key Keras looks it up by (see module doc)."""
    from keras.src.backend.common import global_state

    for obj_type in _SKIPSET_TYPES:
        skipset = global_state.get_global_attribute(f"saving_attr_skipset_{obj_type}", None)
        if skipset is not None:
            global_state.set_global_attribute(f"saving_attr_skiplist_{obj_type}", skipset)
