"""The App Store: StoreKit 2 signed transactions, App Store Server Notifications V2
and the App Store Server API, through Apple's ``app-store-server-library``."""

from genstudio.adapters.iap_apple.client import AppStoreServerApi
from genstudio.adapters.iap_apple.store import AppleAppStore, load_root_certificates

__all__ = ["AppStoreServerApi", "AppleAppStore", "load_root_certificates"]
