"""Expo's push API (https://exp.host/--/api/v2/push/send and /getReceipts)."""

from adapters.expo.client import ExpoPushClient

__all__ = ["ExpoPushClient"]
