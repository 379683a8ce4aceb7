"""The operations settings (issue #20): what a bad value does, and what unset means."""

from __future__ import annotations

import pytest

from genstudio.entrypoints.settings import JobSettings, ObservabilitySettings, Settings


def test_unset_means_no_sentry_no_worker_listener_no_shared_directory() -> None:
    settings = Settings.from_env({})
    assert settings.observability == ObservabilitySettings()
    assert settings.observability.sentry_dsn is None
    assert settings.jobs.worker_metrics_port is None
    assert settings.observability.prometheus_multiproc_dir is None


def test_the_variables_are_read() -> None:
    settings = Settings.from_env(
        {
            "SENTRY_DSN": "https://key@o1.ingest.sentry.io/2",
            "SENTRY_TRACES_SAMPLE_RATE": "0.25",
            "GENSTUDIO_WORKER_METRICS_PORT": "9100",
            "PROMETHEUS_MULTIPROC_DIR": "/run/genstudio-metrics",
        }
    )
    assert settings.observability.sentry_dsn == "https://key@o1.ingest.sentry.io/2"
    assert settings.observability.sentry_traces_sample_rate == 0.25
    assert settings.jobs.worker_metrics_port == 9100
    assert settings.jobs.worker_metrics_host == "0.0.0.0"
    assert settings.observability.prometheus_multiproc_dir == "/run/genstudio-metrics"


@pytest.mark.parametrize("port", ["0", "70000", "-1", "nine"])
def test_a_worker_metrics_port_that_is_not_a_port_stops_the_process(port: str) -> None:
    with pytest.raises(SystemExit, match="GENSTUDIO_WORKER_METRICS_PORT"):
        JobSettings.from_env({"GENSTUDIO_WORKER_METRICS_PORT": port})


@pytest.mark.parametrize("rate", ["1.5", "-0.1", "often"])
def test_a_sample_rate_outside_0_to_1_stops_the_process(rate: str) -> None:
    with pytest.raises(SystemExit, match="SENTRY_TRACES_SAMPLE_RATE"):
        ObservabilitySettings.from_env({"SENTRY_TRACES_SAMPLE_RATE": rate})
