// Black-box compatibility check: the official JS SDK (@langchain/langgraph-sdk) against a
// running graphdock server that serves tests/graphs/langgraph.json.
//
//   node tests/js/compat.mjs http://127.0.0.1:8123
//
// Every call goes through `new Client({ apiUrl })` exactly as an application (or the React
// `useStream` hook) would make it. Each check is a named step; the script prints one JSON
// summary on stdout ({ ok, sdk_version, steps, results, failures }) and exits 1 when any
// step failed. A failure names the step, the SDK error (which carries the server's response
// body) and the last request the SDK sent.

import { readFileSync } from "node:fs";
import { Client } from "@langchain/langgraph-sdk";

const apiUrl = process.argv[2];
if (!apiUrl) {
  console.error("usage: node compat.mjs <server-url>");
  process.exit(2);
}

process.on("unhandledRejection", (error) => {
  console.error(`FAILED unhandled rejection: ${error?.stack ?? error}`);
  process.exit(1);
});

const sdkVersion = JSON.parse(
  readFileSync(new URL("./node_modules/@langchain/langgraph-sdk/package.json", import.meta.url), "utf8"),
).version;

// -- bookkeeping ---------------------------------------------------------------------------

const requests = []; // every request the SDK sent: { method, path, body }

async function onRequest(url, init) {
  let body;
  if (typeof init.body === "string") {
    try {
      body = JSON.parse(init.body);
    } catch {
      body = init.body;
    }
  }
  requests.push({ method: init.method ?? "GET", path: url.pathname + url.search, body });
  return init;
}

const client = new Client({ apiUrl, apiKey: null, onRequest });

// distinguishes this invocation's threads and store items from earlier ones on the same server
const TAG = crypto.randomUUID();

const steps = [];
const results = {};
const failures = [];

async function step(name, fn) {
  const first = requests.length;
  const started = Date.now();
  try {
    const value = await withTimeout(fn(), 60_000, name);
    if (value !== undefined) results[name] = value;
    steps.push({ name, ok: true, ms: Date.now() - started });
    return value;
  } catch (error) {
    const sent = requests.slice(first);
    const failure = {
      step: name,
      error: String(error?.message ?? error),
      status: error?.status,
      request: sent.at(-1) ?? null,
    };
    failures.push(failure);
    steps.push({ name, ok: false, ms: Date.now() - started });
    console.error(`FAILED ${name}: ${failure.error}`);
    if (failure.request) console.error(`  last request: ${JSON.stringify(failure.request)}`);
    return undefined;
  }
}

function withTimeout(promise, ms, name) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step '${name}' timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function check(condition, message, detail) {
  if (!condition) {
    throw new Error(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
  }
}

function equal(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message}: expected ${e}, got ${a}`);
}

async function collect(iterable, { until } = {}) {
  const events = [];
  for await (const part of iterable) {
    events.push(part);
    if (until && until(part)) break;
  }
  return events;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function baseName(event) {
  return String(event).split("|")[0];
}

/** Text of the AI message chunks of a `messages-tuple` stream, in order. */
function streamedTokens(events) {
  const tokens = [];
  for (const { event, data } of events) {
    if (baseName(event) !== "messages" || !Array.isArray(data)) continue;
    const [chunk, metadata] = data;
    check(metadata && typeof metadata === "object", "messages tuple without metadata", data);
    if (chunk?.type === "AIMessageChunk" || chunk?.type === "ai") tokens.push(chunk.content);
  }
  return tokens;
}

function lastValues(events) {
  return events.filter((e) => e.event === "values").at(-1)?.data;
}

async function waitForStatus(threadId, runId, statuses, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const run = await client.runs.get(threadId, runId);
    if (statuses.includes(run.status)) return run;
    await sleep(50);
  }
  throw new Error(`run ${runId} did not reach ${statuses} in ${timeoutMs} ms`);
}

// -- assistants ----------------------------------------------------------------------------

const assistants = await step("assistants.search", async () => {
  const all = await client.assistants.search({ limit: 100 });
  check(Array.isArray(all) && all.length > 0, "no assistants", all);
  const simple = await client.assistants.search({
    graphId: "simple",
    metadata: { created_by: "system" },
    sortBy: "created_at",
    sortOrder: "asc",
    limit: 10,
    offset: 0,
  });
  equal(simple.map((a) => a.graph_id), ["simple"], "graphId filter");
  const paged = await client.assistants.search({ limit: 1, includePagination: true, select: ["assistant_id", "graph_id"] });
  check(paged.assistants.length === 1 && paged.next === "1", "pagination header", paged);
  check(Object.keys(paged.assistants[0]).sort().join() === "assistant_id,graph_id", "select", paged.assistants[0]);
  const count = await client.assistants.count({ graphId: "simple" });
  equal(count, 1, "assistants.count");
  return { count: all.length, simple: simple[0].assistant_id };
});
const simpleId = assistants?.simple;

await step("assistants.get", async () => {
  const a = await client.assistants.get(simpleId);
  equal([a.assistant_id, a.graph_id], [simpleId, "simple"], "assistant");
  return { graph_id: a.graph_id, version: a.version };
});

await step("assistants.getGraph", async () => {
  const drawn = await client.assistants.getGraph(simpleId);
  const ids = drawn.nodes.map((n) => n.id);
  check(ids.includes("a") && ids.includes("b"), "nodes a and b", ids);
  const [sub] = await client.assistants.search({ graphId: "subgraph" });
  const xray = await client.assistants.getGraph(sub.assistant_id, { xray: true });
  const xrayDepth = await client.assistants.getGraph(sub.assistant_id, { xray: 1 });
  const plain = await client.assistants.getGraph(sub.assistant_id, { xray: false });
  check(xray.nodes.some((n) => n.id === "child:inner"), "xray shows the subgraph's nodes", xray);
  equal(xrayDepth.nodes.map((n) => n.id), xray.nodes.map((n) => n.id), "xray depth 1");
  check(plain.nodes.some((n) => n.id === "child"), "no xray", plain);
  return { nodes: ids, xray: xray.nodes.map((n) => n.id) };
});

await step("assistants.getSchemas", async () => {
  const schemas = await client.assistants.getSchemas(simpleId);
  check(schemas.graph_id === "simple", "graph_id", schemas);
  check(schemas.state_schema?.properties?.items, "state schema has items", schemas.state_schema);
  return { keys: Object.keys(schemas).sort() };
});

await step("assistants.getSubgraphs", async () => {
  const [sub] = await client.assistants.search({ graphId: "subgraph" });
  const subgraphs = await client.assistants.getSubgraphs(sub.assistant_id, { recurse: true });
  check(Object.keys(subgraphs).includes("child"), "child subgraph", subgraphs);
  return { namespaces: Object.keys(subgraphs) };
});

await step("assistants.create/update/versions/delete", async () => {
  const created = await client.assistants.create({
    graphId: "simple",
    name: "js-compat",
    description: "made by the JS SDK",
    metadata: { origin: "js" },
    config: { tags: ["js"] },
    context: {},
    ifExists: "raise",
  });
  const updated = await client.assistants.update(created.assistant_id, { metadata: { origin: "js", v: 2 }, name: "js-compat-2" });
  equal(updated.version, 2, "new version");
  const versions = await client.assistants.getVersions(created.assistant_id, { limit: 10 });
  equal(versions.length, 2, "versions");
  const latest = await client.assistants.setLatest(created.assistant_id, 1);
  equal(latest.version, 1, "setLatest");
  await client.assistants.delete(created.assistant_id, { deleteThreads: true });
  return { versions: versions.length };
});

// -- threads -------------------------------------------------------------------------------

const thread = await step("threads.create", async () => {
  const t = await client.threads.create({ metadata: { purpose: TAG, n: 1 }, graphId: "simple" });
  check(typeof t.thread_id === "string", "thread id", t);
  equal(t.metadata.purpose, TAG, "metadata");
  equal(t.metadata.graph_id, "simple", "graphId goes into metadata");
  equal(t.status, "idle", "status");
  const again = await client.threads.create({ threadId: t.thread_id, ifExists: "do_nothing" });
  equal(again.thread_id, t.thread_id, "ifExists do_nothing");
  return { thread_id: t.thread_id, metadata: t.metadata };
});
const threadId = thread?.thread_id;

await step("threads.get", async () => {
  const t = await client.threads.get(threadId);
  equal(t.thread_id, threadId, "thread");
  return { status: t.status };
});

await step("threads.search", async () => {
  const found = await client.threads.search({ metadata: { purpose: TAG }, limit: 10, sortBy: "created_at", sortOrder: "desc" });
  equal(found.map((t) => t.thread_id), [threadId], "search by metadata");
  const byIds = await client.threads.search({ ids: [threadId], status: "idle", select: ["thread_id", "status"] });
  equal(byIds, [{ thread_id: threadId, status: "idle" }], "ids/status/select");
  const count = await client.threads.count({ metadata: { purpose: TAG } });
  equal(count, 1, "threads.count");
  const updated = await client.threads.update(threadId, { metadata: { n: 2 } });
  equal(updated.metadata.n, 2, "threads.update");
  return { found: found.length };
});

await step("threads.getState (empty thread)", async () => {
  // useStream({ fetchStateHistory: { limit: false } }) reads this and expects checkpoint == null
  const state = await client.threads.getState(threadId);
  equal(state.values, {}, "values");
  check(state.checkpoint == null, "no checkpoint yet", state.checkpoint);
  // useStream({ fetchStateHistory: true }) on a brand-new thread
  equal(await client.threads.getHistory(threadId, { limit: 10 }), [], "empty history");
  return { next: state.next };
});

// -- runs.wait / state ---------------------------------------------------------------------

await step("runs.wait", async () => {
  const out = await client.runs.wait(threadId, "simple", {
    input: { items: ["x"] },
    metadata: { via: "wait" },
    config: { tags: ["js"], recursion_limit: 10 },
    multitaskStrategy: "reject",
    onDisconnect: "cancel",
    durability: "sync",
  });
  equal(out, { items: ["x", "a", "b"] }, "wait output");
  return out;
});

await step("threads.getState", async () => {
  const state = await client.threads.getState(threadId, undefined, { subgraphs: true });
  equal(state.values, { items: ["x", "a", "b"] }, "values");
  equal(state.next, [], "next");
  check(state.checkpoint?.checkpoint_id, "checkpoint id", state.checkpoint);
  const byId = await client.threads.getState(threadId, state.checkpoint.checkpoint_id);
  equal(byId.values, state.values, "state by checkpoint id");
  const byObject = await client.threads.getState(threadId, state.checkpoint, { subgraphs: false });
  equal(byObject.values, state.values, "state by checkpoint object");
  return { values: state.values, checkpoint_id: state.checkpoint.checkpoint_id };
});

await step("threads.getHistory", async () => {
  const history = await client.threads.getHistory(threadId, { limit: 10 });
  check(history.length >= 3, "at least 3 states", history.length);
  equal(history[0].values, { items: ["x", "a", "b"] }, "newest first");
  check(history[0].parent_checkpoint?.checkpoint_id, "parent checkpoint", history[0]);
  const before = await client.threads.getHistory(threadId, {
    limit: 1,
    before: { configurable: { checkpoint_id: history[0].checkpoint.checkpoint_id } },
  });
  equal(before[0].checkpoint.checkpoint_id, history[1].checkpoint.checkpoint_id, "before");
  const filtered = await client.threads.getHistory(threadId, { metadata: { source: "loop" }, checkpoint: { checkpoint_ns: "" } });
  check(filtered.length > 0 && filtered.every((s) => s.metadata.source === "loop"), "metadata filter", filtered.length);
  return { length: history.length };
});

await step("threads.updateState", async () => {
  const res = await client.threads.updateState(threadId, { values: { items: ["u"] }, asNode: "b" });
  check(res.checkpoint?.checkpoint_id, "returns checkpoint", res);
  const state = await client.threads.getState(threadId);
  equal(state.values.items.at(-1), "u", "update applied");
  // fork from an older checkpoint, as branching UIs do
  const history = await client.threads.getHistory(threadId, { limit: 10 });
  const old = history.at(-1).checkpoint;
  const forked = await client.threads.updateState(threadId, {
    values: { items: ["f"] },
    checkpointId: old.checkpoint_id,
  });
  check(forked.checkpoint.checkpoint_id !== res.checkpoint.checkpoint_id, "fork", forked);
  // a whole Checkpoint object, as read from a ThreadState (thread_id and checkpoint_map included)
  const head = await client.threads.getState(threadId);
  const viaObject = await client.threads.updateState(threadId, { values: { items: ["o"] }, checkpoint: head.checkpoint });
  check(viaObject.checkpoint?.checkpoint_id, "update from a checkpoint object", viaObject);
  equal((await client.threads.getState(threadId)).values.items.at(-1), "o", "update from a checkpoint object applied");
  return { checkpoint_id: res.checkpoint.checkpoint_id };
});

// -- runs.stream, the way useStream submits --------------------------------------------------

const USE_STREAM_MODES = ["values", "messages-tuple", "updates", "custom"];

const chat = await step("runs.stream (useStream submit)", async () => {
  // useStream: no thread yet -> threads.create({ threadId, metadata }), then runs.stream
  const t = await client.threads.create({ metadata: { ui: "useStream" } });
  let created;
  const events = await collect(
    client.runs.stream(t.thread_id, "chat", {
      input: { messages: [{ type: "human", content: "hi" }] },
      config: undefined,
      context: undefined,
      command: undefined,
      interruptBefore: undefined,
      interruptAfter: undefined,
      metadata: { ui: "useStream" },
      multitaskStrategy: "rollback",
      onCompletion: undefined,
      onDisconnect: "continue",
      checkpoint: undefined,
      streamMode: USE_STREAM_MODES,
      streamSubgraphs: true,
      streamResumable: true,
      durability: "async",
      onRunCreated(meta) {
        created = meta;
      },
    }),
  );
  const names = events.map((e) => e.event);
  equal(names[0], "metadata", "first event");
  const runId = events[0].data.run_id;
  equal(created, { run_id: runId, thread_id: t.thread_id }, "onRunCreated (Content-Location)");
  check(events.every((e) => typeof e.id === "string"), "resumable streams carry SSE ids", names);
  const tokens = streamedTokens(events);
  const final = lastValues(events);
  check(final?.messages?.length === 2, "two messages", final);
  equal(final.messages[1].content, "hello there friend", "AI reply");
  check(names.some((n) => baseName(n) === "updates"), "updates events", names);
  check(!names.includes("error"), "no error event", events.filter((e) => e.event === "error"));

  // second submit with fetchStateHistory: the branch head checkpoint (minus thread_id) is sent
  const history = await client.threads.getHistory(t.thread_id, { limit: 10 });
  const checkpoint = { ...history[0].checkpoint };
  delete checkpoint.thread_id;
  const again = await collect(
    client.runs.stream(t.thread_id, "chat", {
      input: { messages: [{ type: "human", content: "again" }] },
      metadata: undefined,
      onDisconnect: "cancel",
      checkpoint,
      streamMode: ["values", "messages-tuple"],
      streamSubgraphs: false,
      streamResumable: false,
    }),
  );
  const second = lastValues(again);
  equal(second?.messages?.map((m) => m.content), ["hi", "hello there friend", "again", "hello there friend"], "branch continues");
  check(again.every((e) => e.id === undefined), "no ids without streamResumable", again.map((e) => e.id));
  return {
    thread_id: t.thread_id,
    run_id: runId,
    events: [...new Set(names)],
    tokens,
    text: tokens.join(""),
    final_messages: final.messages.length,
  };
});

await step("runs.stream (every useStream callback mode)", async () => {
  // onUpdateEvent/onCustomEvent/onLangChainEvent/onDebugEvent/onCheckpointEvent/onTaskEvent
  // add updates/custom/events/debug/checkpoints/tasks to what useStream requests
  const t = await client.threads.create({});
  const modes = ["values", "messages-tuple", "updates", "custom", "events", "debug", "checkpoints", "tasks"];
  const events = await collect(
    client.runs.stream(t.thread_id, "chat", {
      input: { messages: [{ type: "human", content: "hi" }] },
      streamMode: modes,
      streamSubgraphs: true,
      streamResumable: true,
      onDisconnect: "continue",
    }),
  );
  const names = new Set(events.map((e) => baseName(e.event)));
  for (const name of ["metadata", "values", "messages", "updates", "events", "debug", "checkpoints", "tasks"]) {
    check(names.has(name), `'${name}' events`, [...names]);
  }
  check(!names.has("error"), "no error", events.filter((e) => e.event === "error"));
  equal(streamedTokens(events).join(""), "hello there friend", "tokens");
  return { events: [...names].sort() };
});

await step("runs.stream (custom)", async () => {
  const t = await client.threads.create({});
  const events = await collect(
    client.runs.stream(t.thread_id, "custom", {
      input: {},
      streamMode: ["values", "custom", "updates"],
      onDisconnect: "continue",
    }),
  );
  const custom = events.filter((e) => e.event === "custom").map((e) => e.data);
  equal(custom, [{ progress: 1 }, { progress: 2 }], "custom events");
  equal(lastValues(events), { done: true, progress: [1, 2] }, "values");
  return { custom };
});

await step("runs.stream (subgraphs, ifNotExists create)", async () => {
  const fresh = crypto.randomUUID();
  const events = await collect(
    client.runs.stream(fresh, "subgraph", {
      input: { items: ["x"] },
      streamMode: ["values", "updates"],
      streamSubgraphs: true,
      ifNotExists: "create",
      multitaskStrategy: "enqueue",
      onDisconnect: "continue",
    }),
  );
  const names = events.map((e) => e.event);
  const namespaced = names.filter((n) => n.includes("|"));
  check(namespaced.some((n) => n.startsWith("updates|child:")), "subgraph updates", names);
  equal(lastValues(events), { items: ["x", "x", "inner"] }, "values");
  const t = await client.threads.get(fresh);
  equal(t.thread_id, fresh, "thread created");
  return { namespaced: [...new Set(namespaced.map((n) => n.split(":")[0]))] };
});

await step("null options", async () => {
  // JS callers often pass null for options they do not use; the SDK forwards most as-is
  const t = await client.threads.create({ threadId: null, ifExists: null, metadata: null });
  const found = await client.threads.search({ ids: [t.thread_id], status: null, sortBy: null, sortOrder: null, metadata: null });
  equal(found.length, 1, "search with nulls");
  const events = await collect(
    client.runs.stream(t.thread_id, "simple", {
      input: { items: ["n"] },
      config: null,
      context: null,
      command: null,
      metadata: null,
      checkpoint: null,
      checkpointId: null,
      interruptBefore: null,
      interruptAfter: null,
      multitaskStrategy: null,
      onDisconnect: null,
      ifNotExists: null,
      afterSeconds: null,
      durability: null,
      streamMode: null,
      streamSubgraphs: null,
      streamResumable: null,
      feedbackKeys: null,
      webhook: null,
    }),
  );
  equal(lastValues(events), { items: ["n", "a", "b"] }, "values with null options");
  const state = await client.threads.getState(t.thread_id, null, { subgraphs: null });
  equal(state.values.items, ["n", "a", "b"], "getState with nulls");
  const history = await client.threads.getHistory(t.thread_id, { limit: null, before: null, metadata: null, checkpoint: null });
  check(history.length > 0, "history with nulls", history);
  await client.store.putItem(["js-nulls", TAG], "k", { v: 0 }, { index: null, ttl: null });
  const found2 = await client.store.searchItems(["js-nulls", TAG], { filter: null, query: null, refreshTtl: null, limit: null });
  equal(found2.items.length, 1, "searchItems with nulls");
  return { events: events.length };
});

await step("run errors", async () => {
  const t = await client.threads.create({});
  const events = await collect(client.runs.stream(t.thread_id, "simple", { input: { items: [], fail: true } }));
  const error = events.find((e) => e.event === "error");
  check(error, "error event", events.map((e) => e.event));
  // useStream turns this into a StreamError, which reads error and message
  check(error.data.error === "ValueError" && /boom from node_a/.test(error.data.message), "error payload", error.data);
  let thrown;
  try {
    await client.runs.wait(t.thread_id, "simple", { input: { items: [], fail: true } });
  } catch (e) {
    thrown = e;
  }
  check(thrown && /ValueError: .*boom from node_a/.test(thrown.message), "runs.wait raises the run's error", String(thrown));
  const raw = await client.runs.wait(t.thread_id, "simple", { input: { items: [], fail: true }, raiseError: false });
  equal(raw.__error__?.error, "ValueError", "raiseError false returns __error__");
  equal((await client.threads.get(t.thread_id)).status, "error", "thread status");
  return { error: error.data.error };
});

// -- interrupt and resume --------------------------------------------------------------------

await step("interrupt + resume", async () => {
  const t = await client.threads.create({ metadata: { hitl: true } });
  const out = await client.runs.wait(t.thread_id, "simple", { input: { items: [], ask: true } });
  check(Array.isArray(out.__interrupt__) && out.__interrupt__.length === 1, "interrupt in wait output", out);
  equal(out.__interrupt__[0].value, { question: "approve?" }, "interrupt value");
  const state = await client.threads.getState(t.thread_id);
  equal(state.next, ["b"], "next");
  const interrupts = state.tasks.flatMap((task) => task.interrupts ?? []);
  equal(interrupts.map((i) => i.value), [{ question: "approve?" }], "thread head interrupts (useStream)");
  const thr = await client.threads.get(t.thread_id);
  equal(thr.status, "interrupted", "thread status");

  // useStream's submit(null, { command: { resume } })
  const events = await collect(
    client.runs.stream(t.thread_id, "simple", {
      input: null,
      command: { resume: "yes" },
      streamMode: ["values", "updates"],
      streamResumable: true,
      onDisconnect: "continue",
    }),
  );
  const final = lastValues(events);
  equal(final, { items: ["a", "b"], ask: true, answer: "yes" }, "resumed values");
  return { interrupt: out.__interrupt__[0].value, answer: final.answer };
});

await step("interrupt (subgraph) + resume via runs.wait", async () => {
  const t = await client.threads.create({});
  const first = await client.runs.wait(t.thread_id, "subgraph", { input: { items: [], ask: true } });
  equal(first.__interrupt__?.[0]?.value, { question: "inner?" }, "inner interrupt");
  const state = await client.threads.getState(t.thread_id, undefined, { subgraphs: true });
  check(state.tasks[0]?.state?.values, "subgraph state on the task", state.tasks);
  const out = await client.runs.wait(t.thread_id, "subgraph", { command: { resume: "ok" } });
  equal(out, { items: ["inner"], ask: true, answer: "ok" }, "resumed");
  return out;
});

await step("command goto/update", async () => {
  const t = await client.threads.create({});
  const out = await client.runs.wait(t.thread_id, "simple", {
    command: { update: [["items", ["g"]]], goto: { node: "b", input: { items: ["s"] } } },
  });
  check(Array.isArray(out.items) && out.items.includes("b"), "goto ran b", out);
  return out;
});

// -- background runs, join, joinStream ------------------------------------------------------

await step("runs.create + runs.join", async () => {
  const t = await client.threads.create({});
  let created;
  const run = await client.runs.create(t.thread_id, "simple", {
    input: { items: ["j"] },
    metadata: { via: "create" },
    multitaskStrategy: "enqueue",
    afterSeconds: 0,
    onRunCreated(meta) {
      created = meta;
    },
  });
  check(["pending", "running", "success"].includes(run.status), "status", run);
  equal(created, { run_id: run.run_id, thread_id: t.thread_id }, "onRunCreated");
  const out = await client.runs.join(t.thread_id, run.run_id);
  equal(out, { items: ["j", "a", "b"] }, "join output");
  const fetched = await client.runs.get(t.thread_id, run.run_id);
  equal(fetched.status, "success", "run status");
  const listed = await client.runs.list(t.thread_id, { limit: 10, offset: 0, status: "success", select: ["run_id", "status"] });
  equal(listed, [{ run_id: run.run_id, status: "success" }], "runs.list with select");
  return { run_id: run.run_id, output: out };
});

await step("runs.joinStream (lastEventId)", async () => {
  const t = await client.threads.create({});
  const run = await client.runs.create(t.thread_id, "simple", {
    input: { items: ["r"] },
    streamMode: ["values", "updates"],
    streamResumable: true,
  });
  await client.runs.join(t.thread_id, run.run_id);
  // useStream's joinStream(runId) defaults lastEventId to "-1": replay from the start
  const replay = await collect(client.runs.joinStream(t.thread_id, run.run_id, { lastEventId: "-1" }));
  const names = replay.map((e) => e.event);
  check(names.includes("metadata") && names.includes("values") && names.includes("updates"), "full replay", names);
  equal(lastValues(replay), { items: ["r", "a", "b"] }, "replayed values");
  check(replay.every((e) => typeof e.id === "string"), "ids on replay", replay);
  // resume after the first event: everything that came after it
  const rest = await collect(client.runs.joinStream(t.thread_id, run.run_id, { lastEventId: replay[0].id }));
  equal(rest.map((e) => e.id), replay.slice(1).map((e) => e.id), "replay after lastEventId");
  // filtered join (streamMode is sent as a JSON array in the query string)
  const onlyValues = await collect(
    client.runs.joinStream(t.thread_id, run.run_id, { lastEventId: "0", streamMode: ["values"], cancelOnDisconnect: false }),
  );
  check(onlyValues.length > 0 && onlyValues.every((e) => e.event === "values"), "values only", onlyValues.map((e) => e.event));
  const single = await collect(client.runs.joinStream(t.thread_id, run.run_id, { lastEventId: "0", streamMode: "updates" }));
  check(single.length > 0 && single.every((e) => e.event === "updates"), "updates only", single.map((e) => e.event));
  return { replayed: replay.length, events: [...new Set(names)] };
});

await step("runs.joinStream (live)", async () => {
  const t = await client.threads.create({});
  const run = await client.runs.create(t.thread_id, "slow", { input: { sleep: 0.5 }, streamMode: ["values", "custom"] });
  const events = await collect(client.runs.joinStream(t.thread_id, run.run_id, { streamMode: ["values", "custom"] }));
  check(events.some((e) => e.event === "values"), "live values", events.map((e) => e.event));
  equal((await client.runs.get(t.thread_id, run.run_id)).status, "success", "finished");
  return { events: events.map((e) => e.event) };
});

// -- cancellation and multitasking -------------------------------------------------------------

async function startHang(tid, extra = {}) {
  const controller = new AbortController();
  let runId;
  for await (const part of client.runs.stream(tid, "hang", {
    input: { items: [] },
    streamMode: ["custom"],
    onDisconnect: "continue",
    signal: controller.signal,
    ...extra,
  })) {
    if (part.event === "metadata") runId = part.data.run_id;
    if (part.event === "custom") break;
  }
  controller.abort();
  check(runId, "hang run id");
  return runId;
}

await step("runs.cancel", async () => {
  const t = await client.threads.create({});
  const runId = await startHang(t.thread_id);
  equal((await client.runs.get(t.thread_id, runId)).status, "running", "still running after disconnect (onDisconnect continue)");
  await client.runs.cancel(t.thread_id, runId, true, "interrupt");
  equal((await client.runs.get(t.thread_id, runId)).status, "interrupted", "cancelled");

  // useStream's stop(): runs.cancel(threadId, runId) without waiting -> 202
  const second = await startHang(t.thread_id);
  const res = await client.runs.cancel(t.thread_id, second);
  equal(res, undefined, "202 without body");
  await waitForStatus(t.thread_id, second, ["interrupted"]);
  return { cancelled: [runId, second] };
});

await step("multitaskStrategy interrupt", async () => {
  const t = await client.threads.create({});
  const first = await startHang(t.thread_id);
  const out = await client.runs.wait(t.thread_id, "simple", { input: { items: ["m"] }, multitaskStrategy: "interrupt" });
  equal(out, { items: ["m", "a", "b"] }, "second run output");
  await waitForStatus(t.thread_id, first, ["interrupted"]);
  // reject while busy -> 409
  const busy = await startHang(t.thread_id);
  let status;
  try {
    await client.runs.create(t.thread_id, "simple", { input: { items: [] }, multitaskStrategy: "reject" });
  } catch (error) {
    status = error.status;
  }
  equal(status, 409, "reject while busy");
  await client.runs.cancel(t.thread_id, busy, true);
  return { first_status: "interrupted" };
});

// -- stateless runs --------------------------------------------------------------------------

await step("stateless runs.wait", async () => {
  let created;
  const out = await client.runs.wait(null, "simple", {
    input: { items: ["s"] },
    onCompletion: "delete",
    onDisconnect: "cancel",
    ifNotExists: "create",
    onRunCreated(meta) {
      created = meta;
    },
  });
  equal(out, { items: ["s", "a", "b"] }, "stateless output");
  check(created?.run_id, "run id from Content-Location", created);
  const kept = await client.runs.wait(null, "simple", { input: { items: ["k"] }, onCompletion: "keep" });
  equal(kept, { items: ["k", "a", "b"] }, "stateless keep");
  return out;
});

await step("stateless runs.stream", async () => {
  const events = await collect(client.runs.stream(null, "chat", {
    input: { messages: [{ role: "user", content: "hi" }] },
    streamMode: ["messages-tuple", "values"],
  }));
  equal(streamedTokens(events).join(""), "hello there friend", "stateless tokens");
  return { events: events.length };
});

await step("runs.createBatch", async () => {
  const runs = await client.runs.createBatch([
    { assistantId: "simple", input: { items: ["b1"] } },
    { assistantId: "simple", input: { items: ["b2"] }, metadata: { n: 2 }, onCompletion: "keep", streamMode: ["values"] },
  ]);
  equal(runs.length, 2, "two runs");
  const kept = runs[1];
  const out = await client.runs.join(kept.thread_id, kept.run_id);
  equal(out, { items: ["b2", "a", "b"] }, "kept batch run output");
  equal(kept.metadata, { n: 2 }, "metadata of a camelCase batch item");
  return { runs: runs.length };
});

// -- store -----------------------------------------------------------------------------------

await step("store", async () => {
  await client.store.putItem(["js", TAG, "compat"], "k1", { v: 1, text: "hello" }, { index: false, ttl: null });
  await client.store.putItem(["js", TAG, "other"], "k2", { v: 2 });
  const item = await client.store.getItem(["js", TAG, "compat"], "k1");
  equal(item.value, { v: 1, text: "hello" }, "getItem");
  check(item.createdAt && item.updatedAt, "camelCase timestamps added by the SDK", item);
  const refreshed = await client.store.getItem(["js", TAG, "compat"], "k1", { refreshTtl: false });
  equal(refreshed.key, "k1", "getItem refreshTtl");
  equal(await client.store.getItem(["js", TAG, "compat"], "missing"), null, "missing item is null");
  const found = await client.store.searchItems(["js", TAG], { filter: { v: 1 }, limit: 5, offset: 0, refreshTtl: false });
  equal(found.items.map((i) => i.key), ["k1"], "searchItems");
  const namespaces = await client.store.listNamespaces({ prefix: ["js", TAG], maxDepth: 3, limit: 10, offset: 0 });
  equal(namespaces.namespaces.map((n) => n.at(-1)).sort(), ["compat", "other"], "listNamespaces");
  const suffix = await client.store.listNamespaces({ prefix: ["js"], suffix: [TAG, "other"] });
  equal(suffix.namespaces, [["js", TAG, "other"]], "listNamespaces suffix");
  await client.store.deleteItem(["js", TAG, "other"], "k2");
  equal(await client.store.getItem(["js", TAG, "other"], "k2"), null, "deleted");
  return { item: item.value, namespaces: namespaces.namespaces };
});

// -- thread stream -----------------------------------------------------------------------------

await step("threads.joinStream", async () => {
  check(typeof client.threads.joinStream === "function", "threads.joinStream exists in this SDK");
  const t = await client.threads.create({});
  const controller = new AbortController();
  const seen = [];
  let runId;
  let streamError;
  const listening = (async () => {
    for await (const part of client.threads.joinStream(t.thread_id, {
      streamMode: ["run_modes", "lifecycle"],
      signal: controller.signal,
    })) {
      seen.push(part);
      if (part.event === "metadata" && part.data?.status === "run_done") break;
    }
  })().catch((error) => {
    streamError = error;
  });
  await sleep(500); // let the subscription start (nothing on the wire says it has)
  if (streamError) throw streamError;
  const run = await client.runs.create(t.thread_id, "simple", { input: { items: ["t"] }, streamResumable: true });
  runId = run.run_id;
  await withTimeout(listening, 20_000, "thread stream");
  if (streamError) throw streamError;
  controller.abort();
  const names = seen.map((e) => e.event);
  check(names.includes("values"), "run events on the thread stream", names);
  check(seen.every((e) => typeof e.id === "string"), "thread streams carry ids", seen);
  check(seen.some((e) => e.data?.run_id === runId), "run start metadata", seen);

  // a single mode as a plain string; lastEventId replays the stored events of resumable runs
  const replayController = new AbortController();
  const lifecycle = [];
  for await (const part of client.threads.joinStream(t.thread_id, {
    streamMode: "lifecycle",
    lastEventId: "-1",
    signal: replayController.signal,
  })) {
    lifecycle.push(part);
    if (part.data?.run_id === runId) break;
  }
  replayController.abort();
  check(lifecycle.length > 0 && lifecycle.every((e) => e.event === "metadata"), "lifecycle only", lifecycle);
  return { events: [...new Set(names)], lifecycle: lifecycle.length };
});

// -- threads: ttl, copy, delete ----------------------------------------------------------------

await step("threads.create with a ttl", async () => {
  // the SDK sends {ttl: {ttl: 60, strategy: "delete"}}: swept 60 minutes after its last update
  const t = await client.threads.create({ ttl: 60 });
  check(typeof t.thread_id === "string", "created", t);
  const again = await client.threads.get(t.thread_id);
  equal(again.thread_id, t.thread_id, "readable");
  return { thread_id: t.thread_id };
});

await step("threads.copy + delete", async () => {
  const copy = await client.threads.copy(threadId);
  check(copy.thread_id !== threadId, "copy has a new id", copy);
  await client.threads.delete(copy.thread_id);
  let status;
  try {
    await client.threads.get(copy.thread_id);
  } catch (e) {
    status = e.status;
  }
  equal(status, 404, "deleted thread");
  return { copied: true };
});

// -- summary --------------------------------------------------------------------------------------

/** What the SDK put on the wire: "METHOD /path" (ids replaced) -> body keys and query keys seen. */
function requestShapes() {
  const shapes = {};
  for (const { method, path, body } of requests) {
    const [pathname, search = ""] = path.split("?");
    const template = pathname.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "{id}");
    const shape = (shapes[`${method} ${template}`] ??= { body: new Set(), query: new Set() });
    for (const item of Array.isArray(body) ? body : body && typeof body === "object" ? [body] : []) {
      for (const key of Object.keys(item)) shape.body.add(key);
    }
    for (const key of new URLSearchParams(search).keys()) shape.query.add(key);
  }
  return Object.fromEntries(
    Object.entries(shapes)
      .sort()
      .map(([k, v]) => [k, { body: [...v.body].sort(), query: [...v.query].sort() }]),
  );
}

const summary = {
  ok: failures.length === 0,
  sdk_version: sdkVersion,
  steps,
  results,
  failures,
  requests: requests.length,
  request_shapes: requestShapes(),
};
console.log(JSON.stringify(summary, null, 2));
process.exit(failures.length === 0 ? 0 : 1);
