# A stand-in for redis:7-alpine (deploy/standin/README.md): Debian bookworm's Redis 7.0,
# run as the redis user in /data with protected mode off (the official image builds
# Redis with it off: a container's clients are never on the loopback).
ARG BASE=genstudio-standin/debian:bookworm
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis /data
COPY --chmod=0755 redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME ["/data"]
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
