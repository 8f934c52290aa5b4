// Black-box check of the JS SDK's thread streams (the thread streaming protocol) against a
// running graphdock server that serves tests/graphs/langgraph.json.
//
//   node --experimental-websocket tests/js/protocol/protocol.mjs http://127.0.0.1:8123
//
// Every step runs over both transports (SSE and WebSocket) through
// `client.threads.stream(...)`, as an application or `useStream` would. The script prints
// one JSON summary on stdout ({ ok, sdk_version, steps, results, failures }) and exits 1
// when any step failed.

import { readFileSync } from "node:fs";
import { Client } from "@langchain/langgraph-sdk";

const apiUrl = process.argv[2];
if (!apiUrl) {
  console.error("usage: node protocol.mjs <server-url>");
  process.exit(2);
}

process.on("unhandledRejection", (error) => {
  console.error(`FAILED unhandled rejection: ${error?.stack ?? error}`);
  process.exit(1);
});

const sdkVersion = JSON.parse(
  readFileSync(new URL("./node_modules/@langchain/langgraph-sdk/package.json", import.meta.url), "utf8"),
).version;

const client = new Client({ apiUrl, apiKey: null });
const steps = [];
const results = {};
const failures = [];

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function step(name, fn) {
  try {
    results[name] = await withTimeout(fn(), 30000, name);
    steps.push({ name, ok: true });
  } catch (error) {
    steps.push({ name, ok: false });
    failures.push({ name, error: String(error?.stack ?? error) });
  }
}

function text(content) {
  if (typeof content === "string") return content;
  return content.filter((b) => b.type === "text").map((b) => b.text).join("");
}

async function withThread(assistantId, transport, fn) {
  const thread = client.threads.stream({ assistantId, transport });
  try {
    return await fn(thread);
  } finally {
    await thread.close();
  }
}

for (const transport of ["sse", "websocket"]) {
  await step(`${transport}: plain graph`, () =>
    withThread("simple", transport, async (thread) => {
      const started = await thread.run.start({ input: { items: ["js"] } });
      const output = await thread.output;
      return { run_id: started.run_id, output, thread_id: thread.threadId };
    }),
  );

  await step(`${transport}: chat messages`, () =>
    withThread("chat", transport, async (thread) => {
      await thread.run.start({ input: { messages: [{ role: "user", content: "hi" }] } });
      const texts = [];
      for await (const message of thread.messages) {
        texts.push(await message.text);
      }
      const output = await thread.output;
      return { texts, last: text(output.messages.at(-1).content) };
    }),
  );

  await step(`${transport}: agent tool calls`, () =>
    withThread("p_agent", transport, async (thread) => {
      await thread.run.start({ input: { messages: [{ role: "user", content: "add" }] } });
      const calls = [];
      for await (const call of thread.toolCalls) {
        calls.push(call);
      }
      const output = await thread.output;
      const finished = [];
      for (const call of calls) {
        finished.push({ name: call.name, output: JSON.stringify(await call.output) });
      }
      return { calls: finished, types: output.messages.map((m) => m.type), last: text(output.messages.at(-1).content) };
    }),
  );

  await step(`${transport}: interrupt + respond`, () =>
    withThread("p_approve", transport, async (thread) => {
      await thread.run.start({ input: { items: [] } });
      await thread.output;
      const interrupts = thread.interrupts.map((i) => ({ payload: i.payload, namespace: i.namespace }));
      const pending = thread.interrupts[0];
      await thread.input.respond({ interrupt_id: pending.interruptId, namespace: pending.namespace, response: "js yes" });
      const state = await client.threads.getState(thread.threadId);
      let values = state.values;
      for (let i = 0; i < 100 && JSON.stringify(values) !== JSON.stringify({ items: ["js yes"] }); i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        values = (await client.threads.getState(thread.threadId)).values;
      }
      return { interrupted: thread.interrupted, interrupts, values };
    }),
  );

  await step(`${transport}: subgraphs`, () =>
    withThread("p_nested", transport, async (thread) => {
      await thread.run.start({ input: { items: [] } });
      const names = [];
      for await (const sub of thread.subgraphs) {
        names.push(sub.namespace ?? sub.path);
      }
      const output = await thread.output;
      return { namespaces: names, output };
    }),
  );

  await step(`${transport}: state commands`, () =>
    withThread("simple", transport, async (thread) => {
      await thread.run.start({ input: { items: ["s"] } });
      await thread.output;
      const state = await thread.state.get({ namespace: [] });
      const listed = await thread.state.listCheckpoints({ limit: 10 });
      const tree = await thread.agent.getTree();
      return { values: state.values, steps: listed.checkpoints.map((c) => c.step), tree: tree.tree.graph_name };
    }),
  );
}

const ok = failures.length === 0;
console.log(JSON.stringify({ ok, sdk_version: sdkVersion, steps, results, failures }, null, 2));
process.exit(ok ? 0 : 1);
