# syntax=docker/dockerfile:1
# Targets: operator (no TensorFlow), trainer (TensorFlow CPU), trainer-gpu (TensorFlow + CUDA wheels).
# Each installs the project from its own pyproject with the matching extra.

FROM python:3.11.14-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY trainer ./trainer
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin kubetrain

FROM base AS operator
LABEL org.opencontainers.image.title="kubetrain-operator" \
      org.opencontainers.image.description="kopf operator for TrainingJob resources"
RUN pip install ".[operator]" && rm -rf /src
# Two glibc malloc arenas, not one per thread: the operator's threads otherwise
# fragment them with big pod listings (RSS about 1 GiB instead of 250 MiB).
ENV MALLOC_ARENA_MAX=2
USER 1000
ENTRYPOINT ["python", "-m", "kubetrain_operator"]

# hdfs-native loads MIT Kerberos' libgssapi_krb5.so.2 at run time for Kerberized HDFS
# (keytab login); installed explicitly, as the slim base image does not promise it.
FROM base AS trainer-base
RUN apt-get update && apt-get install -y --no-install-recommends libgssapi-krb5-2=1.20.1-2+deb12u5 \
    && rm -rf /var/lib/apt/lists/*

FROM trainer-base AS trainer
LABEL org.opencontainers.image.title="kubetrain-trainer" \
      org.opencontainers.image.description="TensorFlow trainer (CPU) for kubetrain jobs"
RUN pip install ".[trainer]" && rm -rf /src
USER 1000
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "kubetrain_trainer"]

FROM trainer-base AS trainer-gpu
LABEL org.opencontainers.image.title="kubetrain-trainer-gpu" \
      org.opencontainers.image.description="TensorFlow trainer (CUDA) for kubetrain jobs"
RUN pip install ".[trainer-gpu]" && rm -rf /src
USER 1000
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "kubetrain_trainer"]
