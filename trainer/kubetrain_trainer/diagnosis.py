"""Turn TensorFlow's input errors into messages that name the file and the key.

tf.data reports a corrupt TFRecord as "corrupted record at 12" and a wrong
feature name as "Feature: x ... is required but could not be found", with
neither the file nor the keys that are there. The job has already failed
when this runs, so it may re-read the inputs to find the culprit: it costs
nothing on the success path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from kubetrain_operator.api import DataSpec
from kubetrain_trainer.config import TrainerConfig

# TF wraps op errors in "{{function_node ...}} <message> [Op:...]"; keep the message.
_OP_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[\[\{\{node [^]]*\]\]|\s*\[Op:.*$")


def tf_message(err: BaseException) -> str:
    """One line of a TensorFlow error, without the graph node and op noise."""
    text = getattr(err, "message", None) or str(err)
    return " ".join(_OP_NOISE.sub(" ", text).split())


# A Python exception raised inside tf.data (from_generator) comes back as an
# UnknownError whose text holds "<Type>: <message>" and then its traceback, after
# "{{function_node ...}}" (eager) or "Graph execution error: ..." (inside fit):
# its type survives only as text.
_WRAPPED = re.compile(r"(?:^|\}\}\s)\s*(\w+): ([^\n]*)\n\s*Traceback", re.M)


def hdfs_outage(err: BaseException) -> str | None:
    """The NameNode outage behind a TensorFlow error, or None.

    Streaming HDFS reads run inside tf.data, which turns our
    HdfsUnavailableError into a generic UnknownError; without this the
    outage would read as a permanent failure and never be retried.
    """
    from kubetrain_trainer.data.hdfs import HdfsUnavailableError

    text = getattr(err, "message", None) or str(err)
    for found in _WRAPPED.finditer(text):
        if found.group(1) == HdfsUnavailableError.__name__:
            return found.group(2).strip()
    return None


def explain_input_error(cfg: TrainerConfig, err: BaseException) -> str | None:
    """A message naming the corrupt file or the missing key, or None when the
    inputs look fine (the error came from somewhere else)."""
    import tensorflow as tf

    data = cfg.job.spec.data
    if data is None or data.format != "tfrecord":
        return None
    if not isinstance(err, tf.errors.DataLossError | tf.errors.InvalidArgumentError):
        return None
    from kubetrain_trainer.data import files
    from kubetrain_trainer.data.errors import DataError
    from kubetrain_trainer.data.hdfs import HdfsUnavailableError

    full_scan = isinstance(err, tf.errors.DataLossError)
    for uri in (data.train, data.validation):
        if not uri:
            continue
        try:
            for path in files.list_files(uri):
                problem = check_file(path, data, full_scan)
                if problem is not None:
                    return problem
        except HdfsUnavailableError:
            return None  # an outage, not bad input: leave the error as it is
        except DataError as found:
            return str(found)
    return None


def check_file(path: str, data: DataSpec, full_scan: bool) -> str | None:
    """What is wrong with one TFRecord file: corrupt framing or a missing key.

    Only the first record's keys are checked; with `full_scan` every record's
    framing is read, since corruption can sit anywhere.
    """
    import tensorflow as tf

    try:
        records = _records(path)
        first = next(records, None)
        if full_scan:
            for _ in records:
                pass
    except tf.errors.DataLossError as err:
        return f"{path}: corrupt TFRecord file ({tf_message(err)})"
    if first is None:
        return None
    try:
        example = tf.train.Example.FromString(first)
    except Exception as err:  # protobuf's DecodeError; its module path varies by version
        return f"{path}: a record is not a tf.train.Example ({type(err).__name__}: {err})"
    present = sorted(example.features.feature)
    wanted = [(f.name, "spec.data.features") for f in data.features]
    wanted.append((data.label.name, "spec.data.label"))
    for name, field in wanted:
        if name not in present:
            keys = ", ".join(present) or "none"
            return f"{path}: {field} key {name!r} is not in its records; keys present: {keys}"
    return None


def _records(path: str) -> Iterator[bytes]:
    from kubetrain_trainer.data import fs, tfrecord

    if fs.is_remote(path):
        return tfrecord.records(fs.filesystem(path).stream(path), path)
    import tensorflow as tf

    return (r.numpy() for r in tf.data.TFRecordDataset([path]))
