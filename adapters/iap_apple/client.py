"""The App Store Server API client: Apple's async client, pointed at a configurable
base URL (a stand-in in tests) and with a configurable timeout.

Requests carry Apple's bearer token (an ES256 JWT signed with the App Store Connect
key: ``kid`` header, ``iss`` issuer id, ``bid`` bundle id, ``aud``
``appstoreconnect-v1``), made by the library.
"""

from __future__ import annotations

from typing import Any

from appstoreserverlibrary.api_client import AsyncAppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment


class AppStoreServerApi(AsyncAppStoreServerAPIClient):
    def __init__(
        self,
        *,
        signing_key: bytes,
        key_id: str,
        issuer_id: str,
        bundle_id: str,
        environment: Environment,
        base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(signing_key, key_id, issuer_id, bundle_id, environment)
        if base_url:
            self._base_url = base_url.rstrip("/")
        self._timeout = timeout

    async def _execute_request(
        self,
        method: str,
        url: str,
        params: Any,
        headers: dict[str, str],
        json: Any,
        data: bytes | None,
    ) -> Any:
        return await self.http_client.request(
            method,
            url,
            params=params,
            headers=headers,
            json=json,
            content=data,
            timeout=self._timeout,
        )

    async def aclose(self) -> None:
        await self.async_close()  # type: ignore[no-untyped-call]  # unannotated upstream
