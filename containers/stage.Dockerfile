# One image for all six stages, holding the stages layer of the lock:
# env/stages.lock (every package the stages import, pinned with its sha256 hashes)
# in /opt/venv, the same versions `make install` puts in the venv (with the layers
# above) and containers/build-offline-base-image.sh bakes into the offline base, so
# a stage trains with the same torch, numpy & co. under `make run` and `make run-local`.
# Stage code is not copied in: the launcher mounts the checkout at its own path,
# so an edited stage runs as edited and dvc.lock's code hashes never lie.
#
# Users' default base is NVIDIA's CUDA runtime image: its labels and env make the
# NVIDIA container toolkit mount the host's driver. torch and its CUDA libraries
# come from the lock (the nvidia-* wheels), not from the base. CI and air-gapped
# hosts pass BASE_IMAGE=<containers/build-offline-base-image.sh output>, which holds
# the stages layer in /opt/venv already, so the install below finds all of it satisfied.
ARG BASE_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu22.04
FROM ${BASE_IMAGE}

# The lock is resolved for CPython 3.11 on Linux x86_64: a 3.11 venv at /opt/venv
# (Ubuntu 22.04 ships python3.11 in universe), plus git for the dvc-runner built on this image.
RUN if [ ! -x /opt/venv/bin/python ]; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3.11 python3.11-venv ca-certificates git \
        && rm -rf /var/lib/apt/lists/* \
        && python3.11 -m venv /opt/venv; \
    fi
ENV PATH=/opt/venv/bin:${PATH}

# --require-hashes: a file whose sha256 is not in the lock is refused; --no-deps:
# nothing outside the lock comes in. tests/integration/test_image_env.py compares
# the image's `pip freeze --all` with env/stages.lock.
COPY env/stages.lock /tmp/stages.lock
RUN python -m pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps \
        -r /tmp/stages.lock \
    && python -m pip check \
    && rm /tmp/stages.lock

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg
