"""Google Play's stand-in (OAuth, the Play Developer API, Pub/Sub push tokens) ships in
the testing kit (``genstudio.testing.standins.google_play``, issue #23); this name
keeps our tests' imports working. One copy: the kit's."""

from genstudio.testing.standins.google_play import (
    PACKAGE,
    PREFIX,
    PUSH_ACCOUNT,
    GooglePlayStandIn,
)

__all__ = ["PACKAGE", "PREFIX", "PUSH_ACCOUNT", "GooglePlayStandIn"]
