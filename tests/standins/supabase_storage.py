"""A Supabase Storage stand-in: the REST API under ``/storage/v1`` that SupabaseStorage uses.

- Gateway: every request but public and signed downloads needs ``apikey`` (the service
  or the anon key), else 401 ``{"message": "Invalid API key"}``.
- Storage: object routes need ``Authorization: Bearer <key>``; the service key bypasses
  row-level security, the anon key sees no object of a private bucket (as with no policy).
- Errors as Storage renders them: HTTP 400 with the real status as a string in the body,
  ``{"statusCode": "404", "error": "not_found", "message": "Object not found"}``; 5xx as
  themselves. ``legacy_errors = False`` sends the real status instead (newer versions).
- Buckets are private unless created public. Signed URLs carry a JWT (HS256 over the
  object's ``url`` = ``bucket/key`` and ``exp``), served by
  ``GET /storage/v1/object/sign/{bucket}/{key}?token=`` until ``exp`` on this stand-in's
  clock (``advance(seconds)`` moves it), then ``400 InvalidJWT: jwt expired``.

Knobs: ``inject(Fail(500))``, ``inject(RateLimit(retry_after=0))``, ``inject(Stall(5))``
(see tests.standins.loopback), ``legacy_errors``, ``advance``.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

import jwt

from tests.standins.loopback import Fault, LoopbackStandIn, Reply, Request, json_reply

PREFIX = "/storage/v1"

_ERRORS = {
    400: "InvalidRequest",
    401: "Unauthorized",
    403: "Unauthorized",
    404: "not_found",
    409: "Duplicate",
    429: "too_many_requests",
}


@dataclass
class StoredObject:
    data: bytes
    content_type: str


@dataclass
class Bucket:
    public: bool
    objects: dict[str, StoredObject] = field(default_factory=dict)


class SupabaseStorageStandIn(LoopbackStandIn):
    name = "supabase-storage-stand-in"

    def __init__(
        self,
        *,
        service_key: str = "service-role-key",
        anon_key: str = "anon-key",
        jwt_secret: str = "stand-in-jwt-secret-at-least-32-bytes!",
    ) -> None:
        super().__init__()
        self.service_key = service_key
        self.anon_key = anon_key
        self.jwt_secret = jwt_secret
        self.buckets: dict[str, Bucket] = {}
        self.legacy_errors = True
        self.clock_offset = 0.0

    # -- knobs ------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        self.clock_offset += seconds

    def reset(self) -> None:
        super().reset()
        self.buckets.clear()
        self.legacy_errors = True
        self.clock_offset = 0.0

    @property
    def storage_url(self) -> str:
        """What SupabaseStorage takes as ``url`` (SUPABASE_URL)."""
        return self.url

    # -- protocol -----------------------------------------------------------------------

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        if status == 429 or status >= 500:  # the gateway's and the server's own
            return json_reply(
                {
                    "statusCode": str(status),
                    "error": _ERRORS.get(status, "Internal"),
                    "message": message,
                },
                status,
                headers,
            )
        return self._error(status, _ERRORS.get(status, "Error"), message, headers)

    def _error(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> Reply:
        body = {"statusCode": str(status), "error": error, "message": message}
        return json_reply(body, 400 if self.legacy_errors else status, headers)

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        if not request.path.startswith(PREFIX + "/"):
            return json_reply({"message": "no Route matched with those values"}, 404)
        path = request.path.removeprefix(PREFIX)
        method = request.method

        if method == "GET" and path.startswith("/object/public/"):
            return self._download(*self._split(path, "/object/public/"), role="public")
        if method == "GET" and path.startswith("/object/sign/"):
            return self._signed_download(request, *self._split(path, "/object/sign/"))

        if request.headers.get("apikey") not in (self.service_key, self.anon_key):
            return json_reply({"message": "Invalid API key"}, 401)
        role = self._role(request)
        if role is None:
            return self._error(403, "Unauthorized", "invalid signature")

        if path.startswith("/bucket"):
            return self._bucket_route(method, path, request, role)
        if method == "POST" and path.startswith("/object/sign/"):
            return self._sign(request, *self._split(path, "/object/sign/"), role=role)
        if method == "GET" and path.startswith("/object/authenticated/"):
            return self._download(*self._split(path, "/object/authenticated/"), role=role)
        if method == "DELETE" and path.startswith("/object/") and path.count("/") == 2:
            return self._delete(request, path.removeprefix("/object/"), role)
        if path.startswith("/object/"):
            bucket, key = self._split(path, "/object/")
            if method == "GET":
                return self._download(bucket, key, role=role)
            if method in ("POST", "PUT"):
                return self._upload(request, bucket, key, role, update=method == "PUT")
        return self._error(404, "not_found", f"Route {method}:{request.path} not found")

    def _role(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if token == self.service_key:
            return "service_role"
        if token == self.anon_key:
            return "anon"
        return None

    @staticmethod
    def _split(path: str, prefix: str) -> tuple[str, str]:
        bucket, _, key = path.removeprefix(prefix).partition("/")
        return bucket, key

    def _visible(self, bucket: str, role: str) -> Bucket | None:
        found = self.buckets.get(bucket)
        if found is None or (role != "service_role" and not found.public):
            return None
        return found

    # -- buckets -------------------------------------------------------------------------

    def _bucket_route(self, method: str, path: str, request: Request, role: str) -> Reply:
        if role != "service_role":
            return self._error(403, "Unauthorized", "new row violates row-level security policy")
        if method == "POST" and path == "/bucket":
            body = request.json()
            name = body.get("id") or body.get("name")
            if not isinstance(name, str) or not name:
                return self._error(400, "InvalidRequest", "body must have a name")
            if name in self.buckets:
                return self._error(409, "Duplicate", "The resource already exists")
            self.buckets[name] = Bucket(public=bool(body.get("public", False)))
            return json_reply({"name": name})
        if method == "GET" and path.startswith("/bucket/"):
            name = path.removeprefix("/bucket/")
            found = self.buckets.get(name)
            if found is None:
                return self._error(404, "Bucket not found", "Bucket not found")
            return json_reply({"id": name, "name": name, "owner": "", "public": found.public})
        return self._error(404, "not_found", f"Route {method}:{path} not found")

    # -- objects -------------------------------------------------------------------------

    def _upload(self, request: Request, bucket: str, key: str, role: str, *, update: bool) -> Reply:
        found = self.buckets.get(bucket)
        if found is None:
            return self._error(404, "Bucket not found", "Bucket not found")
        if role != "service_role":
            return self._error(403, "Unauthorized", "new row violates row-level security policy")
        if not key:
            return self._error(400, "InvalidKey", "Invalid key")
        exists = key in found.objects
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        if exists and not (upsert or update):
            return self._error(409, "Duplicate", "The resource already exists")
        if update and not exists:
            return self._error(404, "not_found", "Object not found")
        content_type = request.headers.get("content-type", "application/octet-stream")
        found.objects[key] = StoredObject(request.body, content_type)
        return json_reply({"Id": str(uuid.uuid4()), "Key": f"{bucket}/{key}"})

    def _download(self, bucket: str, key: str, *, role: str) -> Reply:
        found = self._visible(bucket, role)
        stored = found.objects.get(key) if found is not None else None
        if stored is None:
            return self._error(404, "not_found", "Object not found")
        return Reply(200, stored.data, stored.content_type)

    def _delete(self, request: Request, bucket: str, role: str) -> Reply:
        found = self._visible(bucket, role) or Bucket(public=False)  # nothing to delete
        prefixes = request.json().get("prefixes")
        if not isinstance(prefixes, list) or not prefixes:
            return self._error(
                400, "InvalidRequest", "body/prefixes must NOT have fewer than 1 items"
            )
        deleted = [{"name": p, "bucket_id": bucket} for p in prefixes if found.objects.pop(p, None)]
        return json_reply(deleted)

    # -- signed URLs ------------------------------------------------------------------------

    def _sign(self, request: Request, bucket: str, key: str, *, role: str) -> Reply:
        try:
            expires_in = int(request.json()["expiresIn"])
        except (KeyError, TypeError, ValueError):
            return self._error(
                400, "InvalidRequest", "body must have required property 'expiresIn'"
            )
        if expires_in < 1:
            return self._error(400, "InvalidRequest", "body/expiresIn must be >= 1")
        found = self._visible(bucket, role)
        if found is None or key not in found.objects:
            return self._error(404, "not_found", "Object not found")
        now = int(self.now())
        claims = {"url": f"{bucket}/{key}", "iat": now, "exp": now + expires_in}
        token = jwt.encode(claims, self.jwt_secret, algorithm="HS256")
        quoted = urllib.parse.quote(f"{bucket}/{key}", safe="/")
        return json_reply({"signedURL": f"/object/sign/{quoted}?token={token}"})

    def _signed_download(self, request: Request, bucket: str, key: str) -> Reply:
        token = request.query.get("token", "")
        if not token:
            return self._error(400, "InvalidJWT", "querystring must have required property 'token'")
        try:
            claims = jwt.decode(
                token, self.jwt_secret, algorithms=["HS256"], options={"verify_exp": False}
            )
        except jwt.PyJWTError as exc:
            return self._error(400, "InvalidJWT", str(exc))
        if self.now() >= float(claims.get("exp", 0)):
            return self._error(400, "InvalidJWT", "jwt expired")
        if claims.get("url") != f"{bucket}/{key}":
            return self._error(400, "InvalidSignature", "The url do not match the signature")
        return self._download(bucket, key, role="service_role")
