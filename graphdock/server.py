"""The server process: wiring the ports, adapters, hosting and services together."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from graphdock.backends import open_backend
from graphdock.auth import ANONYMOUS, AuthContext
from graphdock.auth.handlers import Authorizer, load_auth
from graphdock.config import Settings
from graphdock.errors import Forbidden, NotFound
from graphdock.hosting import Hosting, load_graphs
from graphdock.hosting.embeddings import resolve_store_index
from graphdock.hosting import loopback
from graphdock.observability import tracing
from graphdock.process import tune_gc
from graphdock.crons.scheduler import CronScheduler
from graphdock.services.assistants import AssistantsService
from graphdock.services.crons import CronsService
from graphdock.services.thread_ttl import ThreadTTLs
from graphdock.webhooks import delivery as webhook_delivery
from graphdock.services.store import StoreService
from graphdock.services.threads import ThreadsService

logger = logging.getLogger("graphdock")


class Server:
    """Everything one server process runs: its backend, graphs, services and, unless it
    serves no API (a worker), the runs it executes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        settings = self.settings
        config = settings.config
        config.apply_env()
        if tracing.setup():  # OTEL_* variables: traces on; flushed last, at stop
            self._stack.push_async_callback(tracing.ashutdown)
        # get_client()/get_sync_client() without url reach this server (hooked before graphs load)
        loopback.prepare()
        loopback.new_secret()
        loopback.set_relay_url(settings.host, settings.port, str(config.http.get("mount_prefix") or ""))
        if not settings.database_uri and settings.run_processes and config.custom_persistence:
            logger.warning(
                "a custom checkpointer or store (checkpointer.path / store.path) is opened by each"
                " process: runs are executed in the server process, not in run processes"
            )
            settings.run_processes = 0
        for key in config.unsupported():
            logger.warning("langgraph.json: '%s' is not supported by graphdock yet and is ignored", key)
        graphs = load_graphs(config)
        self.authorizer = Authorizer(
            load_auth(config),
            dev=settings.dev,
            disable_studio_auth=bool((config.auth or {}).get("disable_studio_auth")),
        )
        for loaded in graphs.values():
            for notice in loaded.notices:
                logger.warning(notice)
        self.backend = backend = await self._stack.enter_async_context(
            open_backend(settings, "server", store_index=resolve_store_index(config))
        )
        assert backend.queue is not None and backend.events is not None
        self.storage, self.queue, self.events = backend.storage, backend.queue, backend.events
        saver, store = backend.checkpointer, backend.store
        self.checkpointer = saver
        self.hosting = Hosting(graphs, store=store, checkpointer=saver, topology=settings.topology_check)  # type: ignore[arg-type]
        self.assistants = AssistantsService(self.storage, self.hosting, self.authorizer)
        self.threads = ThreadsService(self.storage, self.hosting, self.events, saver, self.authorizer)
        self.store = StoreService(store, self.authorizer)
        from graphdock.runs.service import RunsService

        self.runs = RunsService(
            self.storage,
            self.hosting,
            self.events,
            self.queue,
            self.assistants,
            settings,
            self.authorizer,
            self.threads,
        )
        await self.assistants.register_system_assistants()
        # webhooks of runs this process executes; deliveries in flight get a moment at stop
        webhook_delivery.install(config.webhooks)
        self._stack.push_async_callback(webhook_delivery.drain)
        await self.runs.start()
        self._stack.push_async_callback(self.runs.stop)
        self.crons = CronsService(
            self.storage, self.hosting, self.assistants, self.threads, self.runs, self.authorizer
        )
        # scaled out, other processes create crons too: they are seen within max_sleep
        self.scheduler = CronScheduler(
            self.storage, self.crons.fire, max_sleep=2.0 if settings.database_uri else 60.0
        )
        self.crons.on_change = self.scheduler.wake
        await self.scheduler.start()
        self._stack.push_async_callback(self.scheduler.stop)
        self.ttls = ThreadTTLs(self.storage, saver, config.thread_ttl)
        self.threads.ttls = self.ttls
        await self.ttls.start()
        self._stack.push_async_callback(self.ttls.stop)
        tune_gc()

    async def stop(self) -> None:
        await self._stack.aclose()

    # -- operations that span services ---------------------------------------

    async def delete_thread(self, thread_id: str, auth: AuthContext = ANONYMOUS) -> None:
        flt = await self.authorizer.authorize(auth, "threads", "delete", {"thread_id": thread_id})
        await self.threads._row(thread_id, flt)
        await self.runs.cancel_thread_runs(thread_id, action="interrupt", wait=True)
        await self.threads.delete(thread_id)

    async def delete_assistant(
        self, assistant_id: str, *, delete_threads: bool = False, auth: AuthContext = ANONYMOUS
    ) -> None:
        flt = await self.authorizer.authorize(auth, "assistants", "delete", {"assistant_id": assistant_id})
        await self.assistants._get(assistant_id, flt)
        await self.runs.cancel_assistant_runs(assistant_id)
        if delete_threads:
            page = await self.storage.search_threads(
                ids=None,
                metadata={"assistant_id": assistant_id},
                values=None,
                status=None,
                limit=10_000,
                offset=0,
                sort_by="created_at",
                sort_order="asc",
            )
            for row in page.rows:
                try:
                    await self.delete_thread(row["thread_id"], auth)
                except (NotFound, Forbidden):
                    continue  # threads the caller may not delete are kept
        await self.assistants.delete(assistant_id, flt)
