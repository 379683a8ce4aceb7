"""In-app purchase configuration (``APPLE_*``, ``GOOGLE_*``) and the adapters built
from it, typed by their ports (``ports.stores``). A store left unconfigured is None:
its endpoints answer 503."""

from __future__ import annotations

import json
from pathlib import Path

from genstudio.core.model.purchases.products import (
    DEFAULT_PRODUCTS,
    ProductCatalog,
    parse_product_ids,
)
from genstudio.entrypoints.iap_settings import AppleSettings, GoogleSettings
from genstudio.ports.stores import AppleStore, GoogleStore


def product_catalog(apple: AppleSettings, google: GoogleSettings) -> ProductCatalog:
    return DEFAULT_PRODUCTS.with_store_ids(
        apple=parse_product_ids(apple.product_ids), google=parse_product_ids(google.product_ids)
    )


def _text_or_file(value: str) -> str:
    path = Path(value)
    if len(value) < 1024 and "\n" not in value and path.exists():
        return path.read_text()
    return value


def apple_store(apple: AppleSettings) -> AppleStore | None:
    if not apple.root_certificates or not apple.bundle_id:
        return None
    # imported only when configured: the App Store library and its crypto stack are
    # ~40 MiB of a process that may never see Apple (docs/performance.md, worker memory)
    from genstudio.adapters.iap_apple import (
        AppleAppStore,
        AppStoreServerApi,
        load_root_certificates,
    )

    api = None
    if apple.private_key and apple.key_id and apple.issuer_id:
        from appstoreserverlibrary.models.Environment import Environment

        api = AppStoreServerApi(
            signing_key=_text_or_file(apple.private_key).encode(),
            key_id=apple.key_id,
            issuer_id=apple.issuer_id,
            bundle_id=apple.bundle_id,
            environment=Environment(apple.environment),
            base_url=apple.api_base_url,
            timeout=apple.api_timeout,
        )
    return AppleAppStore(
        root_certificates=load_root_certificates(apple.root_certificates),
        bundle_id=apple.bundle_id,
        environment=apple.environment,
        app_apple_id=apple.app_apple_id,
        online_checks=apple.online_checks,
        api=api,
        sandbox_in_production=apple.sandbox_in_production,
    )


def google_store(google: GoogleSettings) -> GoogleStore | None:
    if not google.package_name or not google.service_account:
        return None
    from genstudio.adapters.iap_google import GooglePlayStore  # google-auth: ~30 MiB

    info = json.loads(_text_or_file(google.service_account))
    return GooglePlayStore(
        package_name=google.package_name,
        service_account_info=info,
        pubsub_audience=google.pubsub_audience,
        pubsub_service_account=google.pubsub_service_account,
        base_url=google.play_base_url,
        token_url=google.oauth_token_url,
        certs_url=google.oidc_certs_url,
        timeout=google.api_timeout,
    )
