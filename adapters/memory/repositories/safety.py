"""Trust and safety in memory: reports, the audit log, suspensions, account erasure.
The reference the Postgres adapter's contract is checked against."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.errors import DuplicateEntry
from genstudio.core.model.jobs import Job
from genstudio.core.model.safety import (
    Action,
    AuditEntry,
    Block,
    Report,
    ReportStatus,
    TargetKind,
)
from genstudio.core.model.social import PostState, SocialProfile, hot_score


class InMemorySafety(_Repo):
    # --- reports -------------------------------------------------------------------

    async def add_report(self, report: Report) -> None:
        target = (report.reporter_id, report.target_kind, report.target_id)
        # the partial unique index's lock: a second report at once waits, then sees it
        await self._uow.acquire(("open-report", *target))
        for r in self._d.reports.values():
            if (
                r.status is ReportStatus.OPEN
                and (r.reporter_id, r.target_kind, r.target_id) == target
            ):
                raise DuplicateEntry("an open report on this target exists", field="targetId")
        self._d.reports[report.id] = report

    async def get_report(self, report_id: uuid.UUID, *, lock: bool = False) -> Report | None:
        if lock:
            await self._uow.acquire(("report", report_id))
        return self._d.reports.get(report_id)

    async def open_reporters(self, kind: TargetKind, target_id: uuid.UUID) -> int:
        return len(
            {
                r.reporter_id
                for r in self._d.reports.values()
                if r.target_kind is kind
                and r.target_id == target_id
                and r.status is ReportStatus.OPEN
            }
        )

    async def lock_post(self, post_id: uuid.UUID) -> None:
        await self._uow.acquire(("post", post_id))  # the social repository's post lock

    async def list_reports(
        self, status: ReportStatus | None, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Report]:
        rows = sorted(
            (r for r in self._d.reports.values() if status is None or r.status is status),
            key=lambda r: (r.created_at, r.id),
        )
        if after is not None:
            rows = [r for r in rows if (r.created_at, r.id) > after]
        return rows[:limit]

    async def my_reports(self, reporter_id: uuid.UUID, *, limit: int) -> list[Report]:
        rows = [r for r in self._d.reports.values() if r.reporter_id == reporter_id]
        return sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)[:limit]

    async def settle_reports(
        self,
        kind: TargetKind,
        target_id: uuid.UUID,
        *,
        status: ReportStatus,
        action: Action,
        by: uuid.UUID,
        at: datetime,
    ) -> int:
        settled = 0
        for r in list(self._d.reports.values()):
            if r.target_kind is kind and r.target_id == target_id and r.status is ReportStatus.OPEN:
                self._d.reports[r.id] = msgspec.structs.replace(
                    r, status=status, action=action, resolved_by=by, resolved_at=at
                )
                settled += 1
        return settled

    # --- moderation ------------------------------------------------------------------

    async def set_comment_state(self, comment_id: uuid.UUID, state: str) -> bool:
        comment = self._d.comments.get(comment_id)
        if comment is None:
            return False
        self._d.comments[comment_id] = msgspec.structs.replace(comment, state=PostState(state))
        return True

    async def suspend(self, user_id: uuid.UUID, at: datetime) -> None:
        self._d.suspensions.setdefault(user_id, at)
        for post in list(self._d.posts.values()):
            if post.user_id == user_id and post.state is PostState.VISIBLE:
                await self._uow.acquire(("post", post.id))
                self._d.posts[post.id] = msgspec.structs.replace(post, state=PostState.HIDDEN)

    async def suspended(self, user_id: uuid.UUID) -> bool:
        return user_id in self._d.suspensions

    async def audit(self, entry: AuditEntry) -> None:
        self._d.audit_log[entry.id] = entry

    async def audit_log(self, *, target_id: uuid.UUID | None, limit: int) -> list[AuditEntry]:
        rows = [
            e for e in self._d.audit_log.values() if target_id is None or e.target_id == target_id
        ]
        return sorted(rows, key=lambda e: (e.created_at, e.id), reverse=True)[:limit]

    # --- blocks ----------------------------------------------------------------------

    async def blocks(self, blocker: uuid.UUID, *, limit: int) -> list[Block]:
        rows = []
        for (who, blocked), at in self._d.blocks.items():
            if who != blocker:
                continue
            p = self._d.social_profiles.get(blocked) or SocialProfile(user_id=blocked)
            rows.append(
                Block(
                    blocked_id=blocked,
                    username=p.username,
                    display_name=p.display_name,
                    created_at=at,
                )
            )
        return sorted(rows, key=lambda b: (b.created_at, b.blocked_id), reverse=True)[:limit]

    # --- account erasure -------------------------------------------------------------

    async def unfinished_jobs(self, user_id: uuid.UUID) -> list[Job]:
        return [j for j in self._d.jobs.values() if j.user_id == user_id and not j.status.terminal]

    async def withdraw_posts(self, user_id: uuid.UUID, at: datetime) -> None:
        for post in [p for p in self._d.posts.values() if p.user_id == user_id]:
            await self._uow.acquire(("post", post.id))
            self._d.posts[post.id] = msgspec.structs.replace(
                post, state=PostState.REMOVED, updated_at=at
            )

    async def lock_posts(self, user_id: uuid.UUID) -> None:
        for post_id in sorted(p.id for p in self._d.posts.values() if p.user_id == user_id):
            await self._uow.acquire(("post", post_id))

    async def erased_at(self, user_id: uuid.UUID) -> datetime | None:
        return self._d.erasures.get(user_id)

    async def erase_account(self, user_id: uuid.UUID, at: datetime) -> list[str]:
        d = self._d
        keys: list[str] = []
        social = d.social_profiles.pop(user_id, None)
        if social is not None and social.avatar_key:
            keys.append(social.avatar_key)
        for asset in [m for m in d.media.values() if m.user_id == user_id]:
            keys += [asset.storage_key] + ([asset.thumbnail_key] if asset.thumbnail_key else [])
            del d.media[asset.id]
        for model in [m for m in d.trained_models.values() if m.user_id == user_id]:
            keys += [model.weights_key] + ([model.thumbnail_key] if model.thumbnail_key else [])
            del d.trained_models[model.id]
        sets = {s.id for s in d.photo_sets.values() if s.user_id == user_id}
        for photo in [p for p in d.photos.values() if p.set_id in sets]:
            keys += [photo.storage_key] if photo.storage_key else []
            del d.photos[photo.id]
        for set_id in sets:
            del d.photo_sets[set_id]
        self._erase_social(user_id)
        self._erase_notifications(user_id)
        for job in [j for j in d.jobs.values() if j.user_id == user_id]:
            del d.jobs[job.id]
            d.enqueued_at.pop(job.id, None)
        for event in [e for e in d.job_events.values() if e.user_id == user_id]:
            del d.job_events[event.id]
        for key in [k for k in d.idempotency if k[0] == user_id]:
            del d.idempotency[key]
        profile = d.profiles.get(user_id)
        if profile is not None:
            d.profiles[user_id] = msgspec.structs.replace(profile, email=None)
        d.erasures.setdefault(user_id, at)
        return keys

    def _erase_social(self, user_id: uuid.UUID) -> None:
        d = self._d
        mine = {p.id for p in d.posts.values() if p.user_id == user_id}
        for post_id, liker in list(d.likes):
            if post_id in mine or liker == user_id:
                del d.likes[(post_id, liker)]
                post = d.posts.get(post_id)
                if post_id not in mine and post is not None:
                    # like the trigger: the count and the score follow
                    likes = post.like_count - 1
                    d.posts[post_id] = msgspec.structs.replace(
                        post, like_count=likes, score=hot_score(likes, post.created_at)
                    )
        for comment in list(d.comments.values()):
            if comment.post_id in mine or comment.user_id == user_id:
                del d.comments[comment.id]
                post = d.posts.get(comment.post_id)
                if comment.post_id not in mine and post is not None:
                    d.posts[post.id] = msgspec.structs.replace(
                        post, comment_count=post.comment_count - 1
                    )
        for post_id in mine:
            del d.posts[post_id]
        for pair in [b for b in d.blocks if user_id in b]:
            del d.blocks[pair]

    def _erase_notifications(self, user_id: uuid.UUID) -> None:
        d = self._d
        for n in [n for n in d.notifications.values() if n.user_id == user_id]:
            del d.notifications[n.id]
        for key in [k for k in d.notification_keys if k[0] == user_id]:
            del d.notification_keys[key]
        gone = {x.id for x in d.deliveries.values() if x.user_id == user_id}
        for delivery_id in gone:
            del d.deliveries[delivery_id]
        for ticket in [t for t in d.push_tickets.values() if t.delivery_id in gone]:
            del d.push_tickets[ticket.id]
        d.notification_preferences.pop(user_id, None)
        for token in [t for t in d.push_tokens.values() if t.user_id == user_id]:
            del d.push_tokens[token.token]
