"""Entry point: read the job, train, and exit with a code that means something.

0 success; 2 bad configuration or input (permanent, 1-127); 1 an error in
user code (permanent); 138 a retryable runtime failure such as a lost peer
(>= 128, so `restartPolicy: ExitCode` retries it).
"""

from __future__ import annotations

import argparse
import logging
import sys

from kubetrain_trainer import termination
from kubetrain_trainer.config import (
    EXIT_CONFIG_ERROR,
    EXIT_OK,
    EXIT_RETRYABLE,
    EXIT_USER_ERROR,
    ConfigError,
    TrainerConfig,
    load,
)

log = logging.getLogger("kubetrain_trainer")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kubetrain_trainer",
        description="Run one replica of a kubetrain TrainingJob. The job comes from "
        "KUBETRAIN_JOB (JSON) and this replica's role from TF_CONFIG.",
    )
    parser.add_argument("--log-level", default="INFO", help="Python log level.")
    return parser


def _retryable(err: BaseException | None) -> bool:
    """Errors caused by the cluster, not the job: a lost peer, a timeout."""
    import tensorflow as tf

    return isinstance(
        err,
        tf.errors.UnavailableError
        | tf.errors.DeadlineExceededError
        | tf.errors.AbortedError
        | tf.errors.CancelledError
        | ConnectionError,
    )


def _corrupt_data(err: BaseException) -> bool:
    """A record failed its checksum in TF's native reader: the input, not the code, is bad."""
    import tensorflow as tf

    return isinstance(err, tf.errors.DataLossError)


def _copying_ahead() -> bool:
    """Remote TFRecord files are being copied to scratch and read from there."""
    from kubetrain_trainer.data import copyahead

    return bool(copyahead.reading())


def run(cfg: TrainerConfig) -> None:
    """Do this replica's part: predict, evaluate, serve (parameter_server) or train."""
    from kubetrain_operator.api import ReplicaType, Strategy
    from kubetrain_trainer import strategy

    if cfg.job.spec.task == "predict":
        from kubetrain_trainer import predict

        if cfg.is_reporter:
            predict.run(cfg)
        else:
            log.info("task predict runs on the reporter only: %s has nothing to do", cfg.worker_id)
        return
    if cfg.task_type == ReplicaType.EVALUATOR:
        from kubetrain_trainer import evaluator

        evaluator.run(cfg)
        return
    # The GPU count only decides between mirrored and one_device: 0 is enough here.
    chosen = strategy.choose(cfg.job.spec, cfg.cluster, gpus=0).strategy
    if chosen == Strategy.PARAMETER_SERVER and cfg.task_type in (
        ReplicaType.WORKER,
        ReplicaType.PS,
    ):
        from kubetrain_trainer import ps

        ps.serve(cfg)
        return
    check_inputs(cfg)
    from kubetrain_trainer import train

    train.run(cfg)


def check_inputs(cfg: TrainerConfig) -> None:
    """List the input files before TensorFlow is even imported.

    A wrong path or a NameNode that is down then fails in about a second,
    not after TensorFlow start-up and the workers' rendezvous.

    Raises:
        DataError: an input matches no file or its filesystem cannot be reached.
    """
    from kubetrain_trainer.data import files

    data = cfg.job.spec.data
    for uri in (data.train, data.validation) if data is not None else ():
        if uri:
            files.list_files(uri)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from kubetrain_trainer.data.files import DataError
    from kubetrain_trainer.data.hdfs import HdfsUnavailableError
    from kubetrain_trainer.models import EntrypointError

    cfg: TrainerConfig | None = None
    try:
        cfg = load()
        log.info("job %s, replica %s", cfg.name, cfg.worker_id)
        run(cfg)
    except HdfsUnavailableError as err:
        # A NameNode outage passes; a retry (after backoff) may well succeed.
        log.error("retryable failure: %s", err)
        return _fail(EXIT_RETRYABLE, str(err))
    except (ConfigError, DataError) as err:
        log.error("%s", err)
        return _fail(EXIT_CONFIG_ERROR, str(err))
    except EntrypointError as err:
        if _retryable(err.__cause__):
            log.error("retryable failure: %s", err)
            return _fail(EXIT_RETRYABLE, str(err))
        log.exception("the model entry point failed")
        return _fail(EXIT_USER_ERROR, str(err))
    except Exception as err:
        from kubetrain_trainer import diagnosis

        outage = diagnosis.hdfs_outage(err)
        if outage is not None:
            log.error("retryable failure: %s", outage)
            return _fail(EXIT_RETRYABLE, outage)
        if _corrupt_data(err) and _copying_ahead():
            # The copy-ahead reader knows the remote file it is on: name it
            # without re-reading a possibly huge input (that is _explain's way).
            from kubetrain_trainer.data import tfrecord

            message = str(tfrecord.corruption_error(err))
            log.error("%s", message)
            return _fail(EXIT_CONFIG_ERROR, message)
        if _retryable(err):
            log.error("retryable failure: %s: %s", type(err).__name__, err)
            return _fail(EXIT_RETRYABLE, f"{type(err).__name__}: {diagnosis.tf_message(err)}")

        explained = _explain(cfg, err)
        if explained is not None:
            log.error("%s (TensorFlow said: %s)", explained, diagnosis.tf_message(err))
            return _fail(EXIT_CONFIG_ERROR, explained)
        log.exception("training failed")
        return _fail(EXIT_USER_ERROR, f"{type(err).__name__}: {diagnosis.tf_message(err)}")
    return EXIT_OK


def _explain(cfg: TrainerConfig | None, err: BaseException) -> str | None:
    """The input diagnosis, which must never hide the error it explains."""
    from kubetrain_trainer import diagnosis

    if cfg is None:
        return None
    try:
        return diagnosis.explain_input_error(cfg, err)
    except Exception:
        log.warning("could not diagnose the input error", exc_info=True)
        return None


def _fail(code: int, message: str) -> int:
    """Leave the reason where Kubernetes reads it (the pod's termination message).

    The operator copies it into the job's Failed/Restarting condition, so a
    user sees "no input files match '/data/x'" instead of only an exit code.
    """
    termination.write(message)
    return code
