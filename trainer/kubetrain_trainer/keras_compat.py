"""Version-pinned fix so Keras 3 ``fit``/``evaluate``/``predict`` run under
``tf.distribute.MultiWorkerMirroredStrategy`` (MWMS) with 2+ worker processes.

Upstream bug: keras-team/keras#20585 (also tensorflow/tensorflow#72388). Keras 3.15.1
with TensorFlow 2.21 fails as shipped once MWMS is really multi-worker; with one
worker the multi-worker code paths are never taken, so single-process tests pass.
Two defects in ``keras/src/backend/tensorflow/trainer.py``:

1. ``TensorFlowTrainer._maybe_symbolic_build`` takes one batch from the distributed
   iterator (a *tuple* of ``PerReplica`` values) and calls
   ``strategy.reduce("MEAN", batch, axis=None)`` on the whole tuple, only to learn
   shapes for building the model. MWMS's ``reduce`` accepts a single value, not a
   nest, so ``fit``/``evaluate``/``predict`` die with ``Attempt to convert a value
   (PerReplica...) with an unsupported type``. (It would also be a pointless
   cross-worker all-reduce of a data batch.) Fix: in multi-worker mode, build from
   the first *local* replica's tensors, which have exactly the shapes and dtypes
   the step function sees. No collective op is involved.

2. ``reduce_per_replica(..., reduction="auto"|"mean")`` (used for every train/test
   step's logs) calls ``strategy.reduce("MEAN", v, axis=0)`` in multi-worker mode.
   Logs are scalars, so it fails with ``Invalid reduction dimension 0 for input with
   0 dimensions``. ``axis=0`` would also mean-reduce inside each replica's value,
   unlike the single-worker path (``tf.reduce_mean(local_results, axis=0)``, an
   element-wise mean across replicas). Fix: ``axis=None``, the element-wise
   cross-replica mean, i.e. the single-worker semantics, done as an all-reduce so
   every worker logs identical values.

Everything else (``"concat"`` for ``predict``, ``"sum"``, single-worker and
non-MWMS strategies) is delegated to the original Keras code unchanged.

Version policy: the patch replaces private Keras internals, so it is applied only
to versions in ``VERIFIED_KERAS_VERSIONS``, where the 2-process test
(tests/trainer/test_keras_compat.py) proved both that the bug exists and that the
fix works. For any other Keras 3 version ``apply()`` raises
``UnverifiedKerasVersionError`` rather than patching code it has not seen, or
silently leaving the job to die later with the cryptic error above. To bump Keras:
run that test on the new version, and add the version here if it passes (or
drop this module if upstream fixed the bug). ``allow_unverified=True`` turns the
error into a warning and leaves Keras unpatched.

Legacy Keras (tf_keras) does not have the bug and is a separate package, so the
patch never touches it. ``TF_USE_LEGACY_KERAS=1`` only redirects ``tf.keras``; code
that does ``import keras`` still gets Keras 3, so ``apply()`` patches Keras 3
whatever that variable says.
"""

from __future__ import annotations

import logging
import warnings

log = logging.getLogger(__name__)

#: Keras versions the patch was verified against (bug reproduced, fix tested).
VERIFIED_KERAS_VERSIONS: frozenset[str] = frozenset({"3.15.1"})

_MARK = "_kubetrain_keras_compat"  # set on the patched functions (idempotency)


class UnverifiedKerasVersionError(RuntimeError):
    """The installed Keras 3 version is not in VERIFIED_KERAS_VERSIONS."""


def is_applied() -> bool:
    """Whether the patch is active in this process."""
    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer
    except ImportError:
        return False
    return getattr(tf_trainer.reduce_per_replica, _MARK, False)


def apply(keras_version: str | None = None, *, allow_unverified: bool = False) -> bool:
    """Patch Keras 3 for multi-worker MWMS (keras-team/keras#20585); idempotent.

    Args:
        keras_version: version to check against ``VERIFIED_KERAS_VERSIONS``;
            defaults to the installed ``keras.__version__`` (override for tests).
        allow_unverified: for an unverified version, warn and return False
            instead of raising ``UnverifiedKerasVersionError``.

    Returns:
        True if the patch is active after the call; False if nothing was patched
        (``keras`` is Keras 2, the backend is not TensorFlow, or an unverified
        version with ``allow_unverified=True``).
    """
    import keras

    version = keras_version or keras.__version__
    if int(version.split(".", 1)[0]) < 3:
        log.info("keras_compat: Keras %s is Keras 2 (tf_keras); no patch needed", version)
        return False
    if keras.backend.backend() != "tensorflow":
        log.info("keras_compat: Keras backend is %r; no patch needed", keras.backend.backend())
        return False
    if version not in VERIFIED_KERAS_VERSIONS:
        msg = (
            f"keras_compat: Keras {version} is not verified for the multi-worker "
            f"MWMS fix (keras-team/keras#20585); verified: "
            f"{sorted(VERIFIED_KERAS_VERSIONS)}. Run tests/trainer/test_keras_compat.py "
            f"on this version and update VERIFIED_KERAS_VERSIONS, or train with "
            f"tf_keras (`import tf_keras as keras`)."
        )
        if allow_unverified:
            warnings.warn(msg + " Continuing UNPATCHED.", RuntimeWarning, stacklevel=2)
            return False
        raise UnverifiedKerasVersionError(msg)

    if is_applied():
        log.debug("keras_compat: already applied")
        return True
    _patch()
    log.info(
        "keras_compat: patched Keras %s for multi-worker MWMS (keras-team/keras#20585): "
        "TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica",
        version,
    )
    return True


def _patch() -> None:
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    multi_worker = tf_trainer._collective_all_reduce_multi_worker
    orig_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    orig_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not multi_worker(strategy):
            return orig_build(self, iterator=iterator, data_batch=data_batch)

        def first_local(v):
            if isinstance(v, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(v)[0]
            return v

        for _, _, it in iterator:
            data_batch = tree.map_structure(first_local, next(it))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        # "auto" means "mean" for every non-TPU strategy, MWMS included.
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return orig_reduce(values, strategy, reduction)

    setattr(_maybe_symbolic_build, _MARK, True)
    setattr(reduce_per_replica, _MARK, True)
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    # Looked up as a module global by the step functions at trace time.
    tf_trainer.reduce_per_replica = reduce_per_replica
