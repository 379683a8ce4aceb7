"""The store verifiers' contracts (genstudio.testing.contracts.stores, the suites an
outside adapter runs too) over genstudio's App Store and Google Play adapters, each
configured from its settings to trust the kit's stand-ins."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from genstudio.ports.stores import AppleStore, GoogleStore
from genstudio.testing.contracts.stores import AppleStoreContract, GoogleStoreContract
from genstudio.testing.stores import AppleKit, GoogleKit


class TestAppleAppStore(AppleStoreContract):
    @pytest.fixture
    def apple_store_factory(self, apple_kit: AppleKit) -> Callable[[], AppleStore]:
        return apple_kit.store


class TestGooglePlayStore(GoogleStoreContract):
    @pytest.fixture
    def google_store_factory(self, google_kit: GoogleKit) -> Callable[[], GoogleStore]:
        return google_kit.store
