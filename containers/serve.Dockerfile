# The model server's image (`make serve EXECUTOR=docker`): the stage image (env/stages.lock)
# plus the serve layer, env/serve.lock, which holds only what serving adds; both are
# resolved together (`make lock`), so every shared package keeps the stage image's version.
# Code is mounted at run time, as for the stages.
ARG STAGE_IMAGE
FROM ${STAGE_IMAGE}

COPY env/serve.lock /tmp/serve.lock
RUN python -m pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps \
        -r /tmp/serve.lock \
    && python -m pip check \
    && rm /tmp/serve.lock
