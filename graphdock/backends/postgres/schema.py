"""graphdock's schema in PostgreSQL: its tables, its functions, and the steps that build them.

Step ``i`` of :data:`STEPS` makes schema version ``i + 1`` (:mod:`.database` applies
them). An applied step is never edited: a later graphdock appends one.

Step 2 adds the server-side functions the hot path calls, so that creating a run and
recording its outcome are one statement each (one round trip, one implicit
transaction) instead of a transaction of four to six statements:

- ``gd_json_merge(a, b)``: ``{**a, **b}`` of two JSON objects, key order kept (``a``'s
  keys first, then ``b``'s new ones), as Python merges them;
- ``gd_create_run(...)``: what :meth:`PostgresStorage.create_run` does (lock or create
  the thread, list its runs in flight, refuse for ``reject``, merge the thread's
  metadata, insert the run pending or already claimed) and, for a run inserted pending,
  ``pg_notify`` on :data:`RUN_READY`; its ``outcome`` column is ``created``,
  ``not_found`` or ``conflict`` (nothing written for the last two);
- ``gd_finish_run(...)``: what :meth:`PostgresStorage.finish_run` does, returning
  ``finished``, ``deleted``, ``missing`` or ``lost`` (the lease it was given no longer
  holds: nothing written).
"""

from __future__ import annotations

#: the channel on which workers are told that a run may have become claimable; the
#: payload is the run's ``created_at`` (ISO-8601) when known, else empty
RUN_READY = "gd_run_ready"

ASSISTANT_COLUMNS = (
    "assistant_id, graph_id, config, context, metadata, name, description, version,"
    " created_at, updated_at"
)
VERSION_COLUMNS = (
    "assistant_id, version, graph_id, config, context, metadata, name, description, created_at"
)
THREAD_COLUMNS = (
    'thread_id, created_at, updated_at, state_updated_at, metadata, config, status, "values",'
    " interrupts, error"
)
RUN_COLUMNS = (
    "run_id, thread_id, assistant_id, created_at, updated_at, status, metadata, kwargs,"
    " multitask_strategy, attempt"
)

_STEP_1 = """
CREATE TABLE gd_assistants (
    assistant_id text PRIMARY KEY,
    graph_id text NOT NULL,
    config json NOT NULL,
    context json NOT NULL,
    metadata json NOT NULL,
    name text NOT NULL,
    description text,
    version integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX gd_assistants_graph ON gd_assistants (graph_id);
CREATE INDEX gd_assistants_created ON gd_assistants (created_at);
CREATE TABLE gd_assistant_versions (
    assistant_id text NOT NULL,
    version integer NOT NULL,
    graph_id text NOT NULL,
    config json NOT NULL,
    context json NOT NULL,
    metadata json NOT NULL,
    name text NOT NULL,
    description text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
CREATE TABLE gd_threads (
    thread_id text PRIMARY KEY,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    state_updated_at timestamptz NOT NULL,
    metadata json NOT NULL,
    config json NOT NULL,
    status text NOT NULL,
    "values" json,
    interrupts json,
    error json
);
CREATE INDEX gd_threads_updated ON gd_threads (updated_at);
CREATE INDEX gd_threads_created ON gd_threads (created_at);
CREATE INDEX gd_threads_status ON gd_threads (status);
CREATE TABLE gd_runs (
    run_id text PRIMARY KEY,
    thread_id text NOT NULL,
    assistant_id text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    status text NOT NULL,
    metadata json NOT NULL,
    kwargs json NOT NULL,
    multitask_strategy text NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    worker_id text,
    lease_until timestamptz
);
CREATE INDEX gd_runs_thread ON gd_runs (thread_id, created_at);
CREATE INDEX gd_runs_status ON gd_runs (status, created_at);
CREATE INDEX gd_runs_pending ON gd_runs (created_at, run_id) WHERE status = 'pending';
CREATE UNIQUE INDEX gd_runs_one_running ON gd_runs (thread_id) WHERE status = 'running';
CREATE INDEX gd_runs_held ON gd_runs (worker_id) WHERE status = 'running';
CREATE INDEX gd_runs_lease ON gd_runs (lease_until) WHERE status = 'running';
"""

_STEP_2 = f"""
CREATE FUNCTION gd_json_merge(a json, b json) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(json_object_agg(m.key, m.value ORDER BY m.pos), '{{}}'::json)
    FROM (
        SELECT x.key, coalesce(
            (SELECT y.value FROM json_each(b) WITH ORDINALITY AS y(key, value, n)
             WHERE y.key = x.key ORDER BY y.n DESC LIMIT 1), x.value) AS value, x.n AS pos
        FROM json_each(a) WITH ORDINALITY AS x(key, value, n)
        UNION ALL
        SELECT y.key, y.value, 1000000000 + y.n
        FROM json_each(b) WITH ORDINALITY AS y(key, value, n)
        WHERE NOT EXISTS (SELECT 1 FROM json_each(a) AS x WHERE x.key = y.key)
        AND NOT EXISTS (
            SELECT 1 FROM json_each(b) WITH ORDINALITY AS z(key, value, n)
            WHERE z.key = y.key AND z.n > y.n)
    ) AS m
$$;

CREATE FUNCTION gd_create_run(
    p_run_id text, p_thread_id text, p_assistant_id text, p_created_at timestamptz,
    p_updated_at timestamptz, p_status text, p_metadata json, p_kwargs json,
    p_strategy text, p_attempt integer, p_thread_metadata json, p_thread_config json,
    p_may_create boolean, p_reject boolean, p_start boolean, p_worker_id text,
    p_lease_seconds double precision, p_ready text
) RETURNS TABLE (
    outcome text, inflight text[], run_id text, thread_id text, assistant_id text,
    created_at timestamptz, updated_at timestamptz, status text, metadata json,
    kwargs json, multitask_strategy text, attempt integer
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_metadata json;
    v_inflight text[] := '{{}}';
    v_existed boolean := true;
    v_started boolean;
BEGIN
    SELECT t.metadata INTO v_metadata FROM gd_threads t
    WHERE t.thread_id = p_thread_id FOR UPDATE;
    IF NOT FOUND THEN
        IF NOT p_may_create THEN
            outcome := 'not_found';
            RETURN NEXT;
            RETURN;
        END IF;
        INSERT INTO gd_threads (thread_id, created_at, updated_at, state_updated_at, metadata,
            config, status)
        VALUES (p_thread_id, p_created_at, p_created_at, p_created_at, p_thread_metadata,
            p_thread_config, 'busy')
        ON CONFLICT (thread_id) DO NOTHING;
        IF FOUND THEN
            v_existed := false;
        ELSE  -- another process created it meanwhile
            SELECT t.metadata INTO v_metadata FROM gd_threads t
            WHERE t.thread_id = p_thread_id FOR UPDATE;
            IF NOT FOUND THEN  -- ... and deleted it since
                outcome := 'not_found';
                RETURN NEXT;
                RETURN;
            END IF;
        END IF;
    END IF;
    IF v_existed THEN
        SELECT coalesce(array_agg(r.run_id ORDER BY r.created_at, r.run_id), '{{}}')
        INTO v_inflight FROM gd_runs r
        WHERE r.thread_id = p_thread_id AND r.status IN ('pending', 'running');
        IF p_reject AND cardinality(v_inflight) > 0 THEN
            outcome := 'conflict';
            RETURN NEXT;
            RETURN;
        END IF;
        UPDATE gd_threads t SET status = 'busy',
            metadata = gd_json_merge(v_metadata, p_thread_metadata),
            config = p_thread_config, updated_at = p_created_at
        WHERE t.thread_id = p_thread_id;
    END IF;
    v_started := p_start AND cardinality(v_inflight) = 0;
    RETURN QUERY
    INSERT INTO gd_runs AS r (run_id, thread_id, assistant_id, created_at, updated_at, status,
        metadata, kwargs, multitask_strategy, attempt, worker_id, lease_until)
    VALUES (p_run_id, p_thread_id, p_assistant_id, p_created_at, p_updated_at,
        CASE WHEN v_started THEN 'running' ELSE p_status END, p_metadata, p_kwargs, p_strategy,
        CASE WHEN v_started THEN 1 ELSE p_attempt END,
        CASE WHEN v_started THEN p_worker_id END,
        CASE WHEN v_started THEN now() + p_lease_seconds * interval '1 second' END)
    RETURNING 'created'::text, v_inflight, r.run_id, r.thread_id, r.assistant_id, r.created_at,
        r.updated_at, r.status, r.metadata, r.kwargs, r.multitask_strategy, r.attempt;
    IF NOT v_started THEN
        PERFORM pg_notify('{RUN_READY}', p_ready);
    END IF;
END
$$;

CREATE FUNCTION gd_finish_run(
    p_run_id text, p_status text, p_worker_id text, p_attempt integer,
    p_delete_thread boolean, p_now timestamptz, p_thread_status text,
    p_set_values boolean, p_values json, p_set_interrupts boolean, p_interrupts json,
    p_set_error boolean, p_error json
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_thread text;
BEGIN
    IF p_worker_id IS NULL THEN
        SELECT r.thread_id INTO v_thread FROM gd_runs r WHERE r.run_id = p_run_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN 'missing';
        END IF;
    ELSE
        SELECT r.thread_id INTO v_thread FROM gd_runs r
        WHERE r.run_id = p_run_id AND r.worker_id = p_worker_id AND r.attempt = p_attempt
        AND r.status = 'running' FOR UPDATE;
        IF NOT FOUND THEN
            RETURN 'lost';
        END IF;
    END IF;
    IF p_delete_thread THEN
        -- the run, its thread and everything on it go together: nothing to record first
        PERFORM 1 FROM gd_runs r WHERE r.thread_id = v_thread FOR UPDATE;
        DELETE FROM gd_threads t WHERE t.thread_id = v_thread;
        DELETE FROM gd_runs r WHERE r.thread_id = v_thread;
        RETURN 'deleted';
    END IF;
    UPDATE gd_runs r SET status = p_status, updated_at = p_now, lease_until = NULL
    WHERE r.run_id = p_run_id;
    UPDATE gd_threads t SET updated_at = p_now,
        state_updated_at = CASE WHEN p_set_values THEN p_now ELSE t.state_updated_at END,
        "values" = CASE WHEN p_set_values THEN p_values ELSE t."values" END,
        interrupts = CASE WHEN p_set_interrupts THEN p_interrupts ELSE t.interrupts END,
        error = CASE WHEN p_set_error THEN p_error ELSE t.error END,
        status = CASE
            WHEN p_thread_status = 'busy' OR EXISTS (
                SELECT 1 FROM gd_runs o
                WHERE o.thread_id = v_thread AND o.status IN ('pending', 'running'))
            THEN 'busy' ELSE p_thread_status END
    WHERE t.thread_id = v_thread;
    IF EXISTS (SELECT 1 FROM gd_runs o WHERE o.thread_id = v_thread AND o.status = 'pending') THEN
        PERFORM pg_notify('{RUN_READY}', '');
    END IF;
    RETURN 'finished';
END
$$;
"""

#: step 3: crons and thread TTLs (:mod:`.crons`)
_STEP_3 = """
CREATE TABLE gd_crons (
    cron_id text PRIMARY KEY,
    assistant_id text NOT NULL,
    thread_id text,
    user_id text,
    payload json NOT NULL,
    schedule text NOT NULL,
    timezone text,
    next_run_date timestamptz,
    end_time timestamptz,
    enabled boolean NOT NULL,
    on_run_completed text,
    metadata json NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX gd_crons_next ON gd_crons (next_run_date) WHERE enabled;
CREATE INDEX gd_crons_thread ON gd_crons (thread_id);
CREATE INDEX gd_crons_assistant ON gd_crons (assistant_id);
CREATE TABLE gd_thread_ttls (
    thread_id text PRIMARY KEY,
    strategy text NOT NULL,
    minutes double precision NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX gd_thread_ttls_expiry ON gd_thread_ttls (expires_at);
"""

#: graphdock's schema, one step per version (step ``i`` makes version ``i + 1``);
#: append new steps, never change an applied one
STEPS: tuple[str, ...] = (_STEP_1, _STEP_2, _STEP_3)
