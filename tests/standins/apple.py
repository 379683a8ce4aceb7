"""Apple's stand-ins (a test certificate chain, signed StoreKit 2 data, the App Store
Server API) ship in the testing kit (``genstudio.testing.standins.apple``, issue #23);
this name keeps our tests' imports working. One copy: the kit's."""

from genstudio.testing.standins.apple import (
    APP_APPLE_ID,
    BUNDLE_ID,
    EPOCH,
    LEAF_OID,
    WWDR_OID,
    AppleSigner,
    AppStoreServerStandIn,
    SubscriptionState,
    _cert,
    der_b64,
    ms,
    notification,
    refunded,
    renewal,
    transaction,
)

__all__ = [
    "APP_APPLE_ID",
    "BUNDLE_ID",
    "EPOCH",
    "LEAF_OID",
    "WWDR_OID",
    "AppStoreServerStandIn",
    "AppleSigner",
    "SubscriptionState",
    "_cert",
    "der_b64",
    "ms",
    "notification",
    "refunded",
    "renewal",
    "transaction",
]
