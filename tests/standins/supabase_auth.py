"""A stand-in of Supabase Auth's admin user deletion (GoTrue's ``adminUserDelete``),
written from Supabase's documentation (``auth.admin.deleteUser(id, shouldSoftDelete)``:
``DELETE /auth/v1/admin/users/{id}`` with ``{"should_soft_delete": bool}``) and
GoTrue's behaviour:

- the gateway needs ``apikey``; the admin route needs ``Authorization: Bearer`` with
  the service role key, else 401 (``{"code": 401, "error_code": "no_authorization"
  ...}``) or 403 (``not_admin``) for another key;
- a user that does not exist: 404 ``user_not_found``; a malformed id: 404 too;
- soft delete: the user is marked deleted and every session of theirs ends (GoTrue's
  ``models.Logout``); a user soft-deleted already answers 200 again, changing nothing;
- a hard delete removes the user and their sessions.

State: ``users`` (id -> {"deleted": bool}), ``sessions`` (id -> open session count).
Knobs: the loopback's ``Fail``, ``RateLimit`` and ``Stall``.
"""

from __future__ import annotations

import json
import uuid

from tests.standins.loopback import Fault, LoopbackStandIn, Reply, Request, json_reply

PREFIX = "/auth/v1/admin/users/"


class SupabaseAuthStandIn(LoopbackStandIn):
    name = "supabase-auth-stand-in"

    def __init__(self, service_key: str = "service-key") -> None:
        super().__init__()
        self.service_key = service_key
        self.users: dict[uuid.UUID, dict[str, bool]] = {}
        self.sessions: dict[uuid.UUID, int] = {}

    def add_user(self, user_id: uuid.UUID, sessions: int = 2) -> None:
        self.users[user_id] = {"deleted": False}
        self.sessions[user_id] = sessions

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        return json_reply(
            {"code": status, "error_code": "unexpected_failure", "msg": message}, status, headers
        )

    def _error(self, status: int, code: str, message: str) -> Reply:
        return json_reply({"code": status, "error_code": code, "msg": message}, status)

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        if request.headers.get("apikey") is None:
            return json_reply({"message": "No API key found in request"}, 401)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return self._error(401, "no_authorization", "This endpoint requires a Bearer token")
        if auth.removeprefix("Bearer ") != self.service_key:
            return self._error(403, "not_admin", "User not allowed")
        if request.method != "DELETE" or not request.path.startswith(PREFIX):
            return self._error(404, "not_found", "Not found")
        try:
            user_id = uuid.UUID(request.path.removeprefix(PREFIX))
        except ValueError:
            return self._error(404, "user_not_found", "User not found")
        user = self.users.get(user_id)
        if user is None:
            return self._error(404, "user_not_found", "User not found")
        try:
            params = json.loads(request.body) if request.body else {}
        except json.JSONDecodeError:
            return self._error(400, "bad_json", "Could not parse request body as JSON")
        soft = params.get("should_soft_delete", False)
        if not isinstance(soft, bool):
            return self._error(400, "bad_json", "Could not read params")
        if soft:
            user["deleted"] = True
        else:
            del self.users[user_id]
        self.sessions[user_id] = 0  # every session and refresh token ends
        return json_reply({"id": str(user_id), "deleted_at": "now" if soft else None})
