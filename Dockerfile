# dfagent as a container: the agent runs in the host's network namespace and writes the
# host's nftables, ip rules and routing tables, so it needs --net=host and NET_ADMIN (and
# NET_RAW for mirror mode's raw GRE sockets):
#
#   docker build -t dfagent .
#   docker run -d --name dfagent --net=host --cap-add NET_ADMIN --cap-add NET_RAW \
#       -v /etc/dfagent:/etc/dfagent -v /run/dfagent:/run/dfagent \
#       -v /var/lib/dfagent:/var/lib/dfagent dfagent
#   docker exec dfagent dfagent status           # the CLI over the API socket
#   docker kill -s HUP dfagent                   # reload /etc/dfagent/dfagent.yaml
#
# tests/lab/test_ship.py builds this image's environment on the test machine from this
# file (the apt packages, the two pip lines, the entrypoint) and runs it on a lab router.

# ── build: the wheel, with the C decoder compiled ────────────────────────────────────────
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src

# ── run: the Debian libraries and tools the agent calls, and the wheel ───────────────────
# libnftables1: pip-nftables is a ctypes binding of libnftables.so.1; conntrack: pin counts,
# flow listing and purges; iproute2: `ip` for operators inside the container.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libnftables1 conntrack iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/dfagent-*.whl && rm -rf /wheels
VOLUME ["/etc/dfagent", "/var/lib/dfagent", "/run/dfagent"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["dfagent", "run", "--config", "/etc/dfagent/dfagent.yaml"]
