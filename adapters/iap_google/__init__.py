"""Google Play: the Play Developer API (purchases, subscriptionsv2, acknowledge,
consume) with service-account OAuth, and Real-time developer notifications through
Pub/Sub push with OIDC-verified senders."""

from genstudio.adapters.iap_google.store import GooglePlayStore

__all__ = ["GooglePlayStore"]
