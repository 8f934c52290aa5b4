"""Request bodies of the cron routes (unknown fields are a 422, as for every body)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional, Union

from pydantic import Field

from graphdock.bounds import MAX_OFFSET
from graphdock.models import Body, Config, Metadata, StreamMode

CronSortBy = Literal["cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"]
CronSelect = Literal[
    "cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time", "schedule", "timezone",
    "created_at", "updated_at", "user_id", "payload", "next_run_date", "metadata", "enabled",
]  # fmt: skip
Interrupts = Optional[Union[Literal["*"], list[str]]]
StreamModes = Optional[Union[StreamMode, list[StreamMode]]]

#: the create fields that are the fired run's request (stored in ``payload``)
RUN_FIELDS = (
    "assistant_id", "input", "metadata", "config", "context", "webhook", "interrupt_before",
    "interrupt_after", "stream_mode", "stream_subgraphs", "stream_resumable", "durability",
    "multitask_strategy", "checkpoint_during",
)  # fmt: skip


class _RunFields(Body):
    """What each fire's run is made with (shared by create and patch)."""

    input: Any = None
    metadata: Metadata = None
    config: Optional[Config] = None
    context: Optional[dict[str, Any]] = None
    webhook: Optional[str] = None
    interrupt_before: Interrupts = None
    interrupt_after: Interrupts = None
    stream_mode: StreamModes = None
    stream_subgraphs: Optional[bool] = None
    stream_resumable: Optional[bool] = None
    durability: Optional[Literal["sync", "async", "exit"]] = None
    checkpoint_during: Optional[bool] = None
    multitask_strategy: Optional[Literal["reject", "interrupt", "rollback", "enqueue"]] = None


class CronCreate(_RunFields):
    """``POST /runs/crons`` and ``POST /threads/{thread_id}/runs/crons``."""

    schedule: str
    assistant_id: str
    timezone: Optional[str] = None
    end_time: Optional[datetime] = None
    enabled: bool = True
    on_run_completed: Optional[Literal["delete", "keep"]] = None


class CronPatch(_RunFields):
    """``PATCH /runs/crons/{cron_id}``: any create field but the assistant; ``end_time:
    null`` clears the end time."""

    schedule: Optional[str] = None
    timezone: Optional[str] = None
    end_time: Optional[datetime] = None
    enabled: Optional[bool] = None
    on_run_completed: Optional[Literal["delete", "keep"]] = None


class CronSearch(Body):
    assistant_id: Optional[str] = None
    thread_id: Optional[str] = None
    enabled: Optional[bool] = None
    metadata: Metadata = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: Optional[CronSortBy] = None
    sort_order: Optional[Literal["asc", "desc"]] = None
    select: Optional[list[CronSelect]] = None


class CronCount(Body):
    assistant_id: Optional[str] = None
    thread_id: Optional[str] = None
    metadata: Metadata = None
