"""Crons: scheduled runs. Validation at creation, patch semantics, search, and what a fire is.

A cron stores the run request it fires (``payload``: the run fields of the create
request, ``assistant_id`` resolved and ``config.configurable.cron_id`` set) and the
identity of its creator (``user_id``). A fire is a run created through
:class:`graphdock.runs.service.RunsService` (``prepare`` + ``insert``) with that
identity, ``config.configurable.cron_id`` and the metadata of the cron merged under the
payload's: stateless crons run on a new thread each time (deleted after the run unless
``on_run_completed`` is ``keep``), thread crons on their thread with its multitask strategy.

``next_run_date`` is the first time after now that the schedule matches in the cron's
time zone (None past ``end_time``); it is recomputed whenever the schedule, time zone,
end time or ``enabled`` changes, and advanced from the fire time (never from the missed
time) when the cron fires, so a cron missed while no server ran fires once.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timezone
from typing import Any, Callable

from graphdock import models, serde
from graphdock.auth import ANONYMOUS, AuthContext
from graphdock.auth.handlers import Authorizer
from graphdock.auth.user import AuthenticatedUser
from graphdock.backends.base import Page, Row, Storage
from graphdock.crons.models import RUN_FIELDS, CronCount, CronCreate, CronPatch, CronSearch
from graphdock.crons.schedule import check_schedule, check_timezone, next_run
from graphdock.errors import BadRequest, NotFound, Unprocessable
from graphdock.filters import auth_match
from graphdock.hosting import Hosting, system_assistant_id
from graphdock.services.assistants import AssistantsService
from graphdock.services.common import clean_metadata, mirror_context, normalise_config, parse_uuid
from graphdock.services.threads import ThreadsService

logger = logging.getLogger("graphdock.crons")

CRON_NOT_FOUND = "Cron not found"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return serde.iso(value) if value is not None else None


def compute_next(schedule: str, tz: str | None, end_time: str | datetime | None, after: datetime) -> str | None:
    """``next_run_date`` of a cron, as stored (ISO-8601, UTC), or None past ``end_time``."""
    end = datetime.fromisoformat(end_time) if isinstance(end_time, str) else end_time
    return _iso(next_run(schedule, tz, after, _utc(end)))


class CronsService:
    def __init__(
        self,
        storage: Storage,
        hosting: Hosting,
        assistants: AssistantsService,
        threads: ThreadsService,
        runs: Any,  # graphdock.runs.service.RunsService
        authorizer: Authorizer,
    ) -> None:
        self.storage = storage
        self.hosting = hosting
        self.assistants = assistants
        self.threads = threads
        self.runs = runs
        self.authorizer = authorizer
        #: called after every change that can move the earliest next_run_date (the scheduler's wake-up)
        self.on_change: Callable[[], None] = lambda: None

    # -- validation shared by create and patch --------------------------------------

    def _run_payload(self, fields: dict[str, Any], graph_id: str, assistant: Row, cron_id: str) -> dict[str, Any]:
        """The run fields of a request, validated as a run request would be."""
        payload = {k: copy.deepcopy(v) for k, v in fields.items() if v is not None}
        config = normalise_config(payload.get("config"))
        config["configurable"] = {k: v for k, v in (config.get("configurable") or {}).items() if k != "cron_id"}
        if not config["configurable"]:
            del config["configurable"]
        _, context = mirror_context(config, payload.get("context"))  # 400 for both spellings at once
        self.hosting.validate_context(graph_id, {**(assistant.get("context") or {}), **context})
        if payload.get("webhook") is not None:
            payload["webhook"] = self.runs.webhook_policy.check(payload["webhook"])
        config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron_id}
        payload["config"] = config
        if payload.get("metadata") is not None:
            payload["metadata"] = clean_metadata(payload["metadata"])
        return payload

    async def _assistant(self, assistant_id: str, auth: AuthContext) -> Row:
        row = await self.storage.get_assistant(assistant_id)
        if row is None or row["graph_id"] not in self.hosting:
            raise NotFound(f"Assistant {assistant_id} not found")
        if assistant_id != system_assistant_id(row["graph_id"]):
            flt = await self.authorizer.authorize(auth, "assistants", "read", {"assistant_id": assistant_id})
            if flt and not auth_match(row["metadata"], flt):
                raise NotFound(f"Assistant {assistant_id} not found")
        return row

    # -- routes -------------------------------------------------------------------

    async def create(self, body: CronCreate, *, thread_id: str | None, auth: AuthContext = ANONYMOUS) -> Row:
        """Validate everything (schedule, time zone, assistant, thread, context, webhook),
        authorize ``crons.create``, then insert the cron."""
        schedule = check_schedule(body.schedule)
        tz = check_timezone(body.timezone)
        if thread_id is not None and body.on_run_completed is not None:
            raise Unprocessable("on_run_completed applies only to stateless crons (POST /runs/crons)")
        assistant_id = self.assistants.resolve_id(body.assistant_id)
        assistant = await self._assistant(assistant_id, auth)
        if thread_id is not None:
            await self.threads.visible(thread_id, auth)
        cron_id = serde.uuid7()
        fields = body.model_dump(include=set(RUN_FIELDS), exclude_none=True)
        fields["config"] = body.config.model_dump(exclude_none=True) if body.config else None
        payload = self._run_payload(fields, assistant["graph_id"], assistant, cron_id)
        payload["assistant_id"] = assistant_id
        payload["schedule"] = schedule
        on_completed = None if thread_id is not None else (body.on_run_completed or "delete")
        end_time = _utc(body.end_time)
        value: dict[str, Any] = {
            "payload": payload,
            "schedule": schedule,
            "cron_id": cron_id,
            "thread_id": thread_id,
            "user_id": auth.identity or None,
            "end_time": end_time,
            "metadata": clean_metadata(body.metadata),
        }
        await self.authorizer.authorize(auth, "crons", "create", value)
        now = serde.now()
        row = {
            "cron_id": cron_id,
            "assistant_id": assistant_id,
            "thread_id": thread_id,
            "user_id": auth.identity,
            "payload": payload,
            "schedule": schedule,
            "timezone": tz,
            "next_run_date": compute_next(schedule, tz, end_time, now),
            "end_time": _iso(end_time),
            "enabled": bool(body.enabled),
            "on_run_completed": on_completed,
            "metadata": clean_metadata(value.get("metadata")),
            "created_at": serde.iso(now),
            "updated_at": serde.iso(now),
        }
        created = await self.storage.create_cron(row)
        self.on_change()
        return created

    async def get(self, cron_id: str, auth: AuthContext = ANONYMOUS) -> Row:
        cron_id = parse_uuid(cron_id, "cron")
        flt = await self.authorizer.authorize(auth, "crons", "read", {"cron_id": cron_id})
        row = await self.storage.get_cron(cron_id, auth_filter=flt)
        if row is None:
            raise NotFound(CRON_NOT_FOUND)
        return row

    async def patch(self, cron_id: str, body: CronPatch, auth: AuthContext = ANONYMOUS) -> Row:
        """Change a cron: run fields merged shallowly into the payload (the assistant and
        ``config.configurable.cron_id`` kept), metadata merged, ``end_time: null`` clears."""
        cron_id = parse_uuid(cron_id, "cron")
        given = body.model_fields_set
        if not given:
            raise BadRequest("Request body cannot be empty")
        run_changes = {k: getattr(body, k) for k in RUN_FIELDS if k in given}
        if "config" in run_changes and body.config is not None:
            run_changes["config"] = body.config.model_dump(exclude_none=True)
        value: dict[str, Any] = {
            "cron_id": cron_id,
            "schedule": body.schedule,
            "end_time": _utc(body.end_time),
            "enabled": body.enabled,
            "on_run_completed": body.on_run_completed,
            "payload": run_changes,
            "metadata": clean_metadata(body.metadata) if body.metadata is not None else None,
        }
        flt = await self.authorizer.authorize(auth, "crons", "update", value)
        row = await self.storage.get_cron(cron_id, auth_filter=flt)
        if row is None:
            raise NotFound(CRON_NOT_FOUND)
        changes: dict[str, Any] = {}
        schedule, tz, end_time = row["schedule"], row["timezone"], row["end_time"]
        if "schedule" in given and body.schedule is not None:
            schedule = changes["schedule"] = check_schedule(body.schedule)
        if "timezone" in given:
            tz = changes["timezone"] = check_timezone(body.timezone)
        if "end_time" in given:
            end_time = changes["end_time"] = _iso(_utc(body.end_time))
        if "enabled" in given and body.enabled is not None:
            changes["enabled"] = body.enabled
        if "on_run_completed" in given and body.on_run_completed is not None:
            if row["thread_id"] is not None:
                raise Unprocessable("on_run_completed applies only to stateless crons")
            changes["on_run_completed"] = body.on_run_completed
        if run_changes:
            assistant = await self._assistant(row["assistant_id"], ANONYMOUS)
            payload = dict(row["payload"])
            merged = {k: payload.get(k) for k in RUN_FIELDS}
            merged.update(run_changes)
            if "config" not in run_changes:
                cfg = dict(merged.get("config") or {})
                cfg["configurable"] = {k: v for k, v in (cfg.get("configurable") or {}).items() if k != "cron_id"}
                merged["config"] = cfg
            if "context" in run_changes and "config" not in run_changes:
                merged["config"] = {k: v for k, v in (merged["config"] or {}).items() if k != "configurable"}
            checked = self._run_payload(merged, assistant["graph_id"], assistant, cron_id)
            checked["assistant_id"], checked["schedule"] = row["assistant_id"], schedule
            changes["payload"] = checked
        elif "schedule" in changes:
            changes["payload"] = {**row["payload"], "schedule": schedule}
        if value.get("metadata") is not None:
            changes["metadata"] = {**(row["metadata"] or {}), **clean_metadata(value["metadata"])}
        if {"schedule", "timezone", "end_time", "enabled"} & set(changes):
            changes["next_run_date"] = compute_next(schedule, tz, end_time, serde.now())
        updated = await self.storage.update_cron(cron_id, changes, auth_filter=flt)
        if updated is None:
            raise NotFound(CRON_NOT_FOUND)
        self.on_change()
        return updated

    async def delete(self, cron_id: str, auth: AuthContext = ANONYMOUS) -> None:
        cron_id = parse_uuid(cron_id, "cron")
        flt = await self.authorizer.authorize(auth, "crons", "delete", {"cron_id": cron_id})
        if not await self.storage.delete_cron(cron_id, auth_filter=flt):
            raise NotFound(CRON_NOT_FOUND)
        self.on_change()

    async def _filter(self, auth: AuthContext, body: CronSearch | CronCount) -> Row | None:
        value = {
            "assistant_id": body.assistant_id,
            "thread_id": body.thread_id,
            "limit": getattr(body, "limit", None),
            "offset": getattr(body, "offset", None),
            "metadata": body.metadata,
        }
        return await self.authorizer.authorize(auth, "crons", "search", value)

    def _ids(self, body: CronSearch | CronCount) -> tuple[str | None, str | None]:
        assistant_id = self.assistants.resolve_id(body.assistant_id) if body.assistant_id else None
        thread_id = parse_uuid(body.thread_id, "thread") if body.thread_id else None
        return assistant_id, thread_id

    async def search(self, body: CronSearch, auth: AuthContext = ANONYMOUS) -> Page:
        flt = await self._filter(auth, body)
        assistant_id, thread_id = self._ids(body)
        return await self.storage.search_crons(
            assistant_id=assistant_id,
            thread_id=thread_id,
            enabled=body.enabled,
            metadata=body.metadata,
            limit=body.limit,
            offset=body.offset,
            sort_by=body.sort_by or "created_at",
            sort_order=body.sort_order or "desc",
            auth_filter=flt,
        )

    async def count(self, body: CronCount, auth: AuthContext = ANONYMOUS) -> int:
        flt = await self._filter(auth, body)
        assistant_id, thread_id = self._ids(body)
        return await self.storage.count_crons(
            assistant_id=assistant_id, thread_id=thread_id, metadata=body.metadata, auth_filter=flt
        )

    # -- firing -------------------------------------------------------------------

    def creator(self, row: Row) -> AuthContext:
        """The auth context a fire runs with: the creator's identity (none without auth)."""
        if not self.authorizer.enabled or not row.get("user_id"):
            return ANONYMOUS
        return AuthContext(user=AuthenticatedUser(row["user_id"]), permissions=[])

    def run_request(self, row: Row) -> models.RunCreate:
        """The run request a fire of ``row`` makes (``cron_id`` is added by :meth:`fire`)."""
        payload = copy.deepcopy(row["payload"])
        config = payload.get("config") or {}
        configurable = {k: v for k, v in (config.get("configurable") or {}).items() if k != "cron_id"}
        config = {**config, "configurable": configurable} if configurable else {
            k: v for k, v in config.items() if k != "configurable"
        }
        fields = {k: payload.get(k) for k in RUN_FIELDS if payload.get(k) is not None}
        fields.update(
            assistant_id=row["assistant_id"],
            config=config or None,
            metadata={**(row.get("metadata") or {}), **(payload.get("metadata") or {})},
        )
        if row["thread_id"] is None:
            fields.pop("multitask_strategy", None)
            fields["on_completion"] = row.get("on_run_completed") or "delete"
        return models.RunCreate.model_validate(fields)

    async def fire(self, row: Row) -> Row:
        """Create the run of one fire of ``row`` (see the module docstring)."""
        body = self.run_request(row)
        prepared = await self.runs.prepare(
            body,
            thread_id=row["thread_id"],
            auth=self.creator(row),
            extra_configurable={"cron_id": row["cron_id"]},
        )
        return await self.runs.insert(prepared)
