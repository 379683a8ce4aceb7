# A stand-in for python:3.11-slim on a machine without Docker Hub (README.md here):
# Debian bookworm's Python 3.11 in a venv at /usr/local/py, first on PATH, so that
# `python` and `pip` are what they are in the official image (there: /usr/local/bin).
# local-ca/: the building machine's own certificate authorities (build.sh copies
# /usr/local/share/ca-certificates), for a network that re-signs TLS; pip is told to
# use the system bundle, as this machine's pip is.
ARG BASE=genstudio-standin/debian:bookworm
FROM ${BASE}
ENV LANG=C.UTF-8
COPY local-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates \
 && printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/pip.conf \
 && python3 -m venv /usr/local/py
ENV PATH=/usr/local/py/bin:$PATH
CMD ["python3"]
