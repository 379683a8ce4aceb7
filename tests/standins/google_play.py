"""Google Play's stand-in (OAuth, the Play Developer API, Pub/Sub push tokens) ships in
the testing kit (``genstudio.testing.standins.google_play``, issue #23); this name
keeps our tests' imports working. One copy: the kit's. ``google_settings``: the
service's Google settings pointed at a running stand-in."""

from __future__ import annotations

import json

from genstudio.entrypoints.iap_settings import GoogleSettings
from genstudio.testing.standins.google_play import (
    PACKAGE,
    PREFIX,
    PUSH_ACCOUNT,
    GooglePlayStandIn,
)


def google_settings(
    play: GooglePlayStandIn,
    *,
    audience: str,
    package: str = PACKAGE,
    push_account: str = PUSH_ACCOUNT,
    certs_url: str | None = None,
) -> GoogleSettings:
    """Play Developer API, OAuth and Pub/Sub's certificates all at the stand-in (or
    ``certs_url``), tokens for ``audience`` signed by ``push_account``."""
    return GoogleSettings(
        package_name=package,
        service_account=json.dumps(play.service_account_info()),
        play_base_url=play.url,
        oauth_token_url=play.token_url,
        oidc_certs_url=certs_url or play.certs_url,
        pubsub_audience=audience,
        pubsub_service_account=push_account,
        api_timeout=2.0,
    )


__all__ = ["PACKAGE", "PREFIX", "PUSH_ACCOUNT", "GooglePlayStandIn", "google_settings"]
