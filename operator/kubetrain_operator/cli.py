"""The `kubetrain` command: crd, validate, plan, run, data.

Exit codes: 0 success, 2 the input is wrong (with the field and what is
wrong), other non-zero codes come from the job itself.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console

from kubetrain_operator import crd as crd_module
from kubetrain_operator import plan as planner
from kubetrain_operator.api import TrainingJob, format_errors

EXIT_INVALID = 2

app = typer.Typer(
    help="Distributed TensorFlow training jobs, on Kubernetes or on this machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True, soft_wrap=True)
# soft_wrap: paths and names stay on one line, so scripts can grep the output.
out_console = Console(soft_wrap=True)


class InvalidJob(Exception):
    """A job file that cannot be used; the message says where and why."""


def load_job(path: Path) -> TrainingJob:
    """Read and validate a TrainingJob YAML file.

    Raises:
        InvalidJob: the file is missing, not YAML, or not a valid TrainingJob.
    """
    try:
        text = path.read_text()
    except OSError as err:
        raise InvalidJob(f"{path}: cannot read: {err.strerror}") from err
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise InvalidJob(f"{path}: not valid YAML{where}: {problem}") from err
    if not isinstance(raw, dict):
        raise InvalidJob(f"{path}: expected a TrainingJob mapping, got {type(raw).__name__}")
    try:
        return TrainingJob.model_validate(raw)
    except ValidationError as err:
        lines = "\n".join(f"  {line}" for line in format_errors(err))
        raise InvalidJob(f"{path}: invalid TrainingJob:\n{lines}") from err


def _load_or_exit(path: Path) -> TrainingJob:
    try:
        return load_job(path)
    except InvalidJob as err:
        err_console.print(f"[bold red]error[/]: {err}", highlight=False, markup=True)
        raise typer.Exit(EXIT_INVALID) from err


JobFile = Annotated[Path, typer.Argument(help="TrainingJob YAML file.")]


@app.command()
def crd() -> None:
    """Print the CustomResourceDefinition (generated from the API models)."""
    sys.stdout.write(crd_module.crd_yaml())


@app.command()
def validate(job_file: JobFile) -> None:
    """Check a job file; print each wrong field and exit 2 when it is invalid."""
    job = _load_or_exit(job_file)
    out_console.print(f"[green]ok[/]: {job_file} is a valid TrainingJob ({job.metadata.name})")


@app.command("plan")
def plan_cmd(
    job_file: JobFile,
    image: Annotated[
        str, typer.Option(help="Default trainer image.")
    ] = planner.Settings.default_image,
) -> None:
    """Print the services and pods (with TF_CONFIG) the operator would create."""
    job = _load_or_exit(job_file)
    objects = planner.plan(job, planner.Settings(default_image=image))
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, width=100))


@app.command()
def run(
    job_file: JobFile,
    work_dir: Annotated[
        Path | None, typer.Option(help="Scratch and backup space; default ./runs/<job>.")
    ] = None,
) -> None:
    """Run the job on this machine: one local process per replica."""
    from kubetrain_operator import local

    job = _load_or_exit(job_file)
    code = local.run(job, work_dir or Path("runs") / job.metadata.name)
    raise typer.Exit(code)


@app.command()
def data(
    dataset: Annotated[str, typer.Argument(help="Dataset to write; `digits` (scikit-learn).")],
    # A str, not a Path: Path would fold hdfs://host/... into hdfs:/host/...
    out: Annotated[
        str, typer.Argument(help="Output directory: a local path, hdfs:// or viewfs:// URI.")
    ],
    format: Annotated[str, typer.Option("--format", help="`tfrecord` or `parquet`.")] = "tfrecord",
) -> None:
    """Write a small real dataset as train/ and validation/ shards (needs the trainer extra).

    HADOOP_CONF_DIR (and Kerberos) apply to hdfs:// output as they do to training.
    """
    if dataset != "digits":
        err_console.print(f"[bold red]error[/]: dataset: unknown {dataset!r}; known: digits")
        raise typer.Exit(EXIT_INVALID)
    if format not in ("tfrecord", "parquet"):
        err_console.print(
            f"[bold red]error[/]: --format: unknown {format!r}; known: tfrecord, parquet"
        )
        raise typer.Exit(EXIT_INVALID)
    from kubetrain_trainer import datasets
    from kubetrain_trainer.data.errors import DataError

    try:
        written = datasets.write_digits(out, format=format)
    except DataError as err:
        err_console.print(f"[bold red]error[/]: {err}")
        raise typer.Exit(1) from err
    out_console.print(f"wrote {written} ({format})")


def main() -> None:
    app()
