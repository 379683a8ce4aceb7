"""Expo's push API (https://exp.host/--/api/v2/push/send and /getReceipts)."""

from genstudio.adapters.expo.client import EXPO_RATE, ExpoPushClient, TokenBucket

__all__ = ["EXPO_RATE", "ExpoPushClient", "TokenBucket"]
