/**
 * The broadcast workload: producers publish to one stream while two consumer groups
 * (transactional: each message's effect is an item whose `applied` count it increments,
 * committed with the cursor) deliver it with two competing consumers each. Group `queue`
 * takes its hints from the FIFO queue; group `log` tails the log.
 *
 * Faults, besides the SDK faults on every DynamoDB and SQS client:
 * - a producer crashes after taking numbers, 1 to MESSAGES_PER_TRANSACTION of them as a
 *   batch would (the slots stay empty until a consumer fills the run, in one pass);
 * - a producer crashes after writing and before sending (the message is only in the log);
 * - a message is sent to the queue twice (a duplicate delivery);
 * - a dedup id is published again (must not make a second message), and a third of the
 *   publishes with a dedup id are made by two producers at once (as a retried Lambda
 *   would), which must yield one message at one seq for both;
 * - a consumer crashes mid-batch (its catch-up is aborted at a random moment).
 *
 * After the run (faults off) one catch-up per group finishes the stream; then:
 * - `permanent-gap`: a slot up to the head is still empty, or a group's cursor is short of it;
 * - `lost-publish`: an acknowledged publish whose slot does not hold its message, or that
 *   some group never applied;
 * - `duplicate-delivery`: an effect applied more than once;
 * - `disagreement`: a group applied something other than the log's message at a seq, or
 *   applied a no-op's seq; the groups' effects differ;
 * - `duplicate-message`: one dedup id or one payload in two slots;
 * - `not-published`: a slot holds a payload nobody published (integrity);
 * - `out-of-order`: a consumer's handler went back to a lower seq than one it had seen committed.
 * Negative controls: `cursor: "unchecked"`: consumers move the cursor without its condition
 * (three per group, with handlers that take 5–30 ms, so the race it loses happens often);
 * `dedup: "check-then-act"`: producers read the dedup record and then write it without a
 * condition, which only concurrent duplicate publishes expose.
 */
import { InvalidArgumentError } from "../../errors.js";
import { paginateQuery, type AttributeValue, type DynamoDBClient, type TransactWriteItem } from "@aws-sdk/client-dynamodb";
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { Broadcast, deduplicationId, MESSAGES_PER_TRANSACTION } from "../../ordering/broadcast.js";
import { ConsumerGroup } from "../../ordering/consumer.js";
import { parseSlot, StreamLog, type Slot } from "../../ordering/log.js";
import type { Anomaly } from "../invariants.js";
import type { Operation } from "../history.js";
import { pauseFor, startWorkload, type Worker, type WorkloadEnvironment, type WorkloadResult } from "./workers.js";

export interface BroadcastWorkloadOptions {
  producers?: number;
  /** "unchecked": the negative control for consumers. */
  cursor?: "checked" | "unchecked";
  /** "check-then-act": the negative control for concurrent duplicate publishes. */
  dedup?: "conditional" | "check-then-act";
}

const GROUPS = ["queue", "log"] as const;

export async function runBroadcastWorkload(env: WorkloadEnvironment, options: BroadcastWorkloadOptions = {}): Promise<WorkloadResult> {
  const setup = env.broadcast;
  if (!setup) throw new InvalidArgumentError("env.broadcast", "is required by the broadcast workload (log table, queue, SQS configuration)");
  const checkThenAct = options.dedup === "check-then-act";
  const control = options.cursor === "unchecked" || checkThenAct;
  const name = options.cursor === "unchecked" ? "broadcast, cursor unchecked" : checkThenAct ? "broadcast, dedup check-then-act (duplicate publishes)" : "broadcast";
  /** Share of dedup-id publishes made by two producers at once. */
  const twinShare = checkThenAct ? 0.8 : 0.3;
  const producers = options.producers ?? 3;
  // The control widens the race it must lose: more consumers, and handlers that take a while.
  const consumersPerGroup = control ? 3 : 2;
  const run = startWorkload(env, name, producers + GROUPS.length * consumersPerGroup);
  const stream = `verify-${env.runId}-${control ? (checkThenAct ? "dedup-control" : "control") : "stream"}`;
  const { recorder } = run;
  /** Per consumer: the seqs its handler was called with, and the highest it knew committed. */
  const handled = new Map<string, { seq: number; committedBefore: number }[]>();

  const sqsOf = (w: Worker) => {
    const sqs = new SQSClient(setup.sqs);
    w.schedule.attach(sqs);
    w.gate.attach(sqs);
    return sqs;
  };
  const effectKey = (group: string, seq: number) => ({ pk: { S: `effect#${stream}#${group}` }, sk: { N: String(seq) } });
  const consumerOf = (w: Worker, group: string) => {
    const calls: { seq: number; committedBefore: number }[] = [];
    handled.set(w.id, calls);
    let committed = 0;
    const consumer = new ConsumerGroup<{ id: string }>({
      tableName: setup.logTable,
      dynamodb: w.dynamodb,
      stream,
      group,
      holeTimeoutMs: 500,
      clock: w.clock,
      transactional: async (m): Promise<TransactWriteItem[]> => {
        calls.push({ seq: m.seq, committedBefore: committed });
        if (control) await pauseFor(w.random.int(5, 30));
        return [
          {
            Update: {
              TableName: setup.logTable,
              Key: effectKey(group, m.seq),
              UpdateExpression: "ADD applied :one SET payload = :p",
              ExpressionAttributeValues: { ":one": { N: "1" }, ":p": { S: JSON.stringify(m.payload) } },
            },
          },
        ];
      },
    }, { unsafeSkipCursorCheck: control });
    return { consumer, noteCommitted: (position: number) => (committed = Math.max(committed, position)) };
  };

  const producerWorkers = run.workers.slice(0, producers);
  const consumerWorkers = run.workers.slice(producers);
  type Role = { kind: "producer"; broadcast: Broadcast; logOnly: Broadcast; sqs: SQSClient } | { kind: "consumer"; group: string; sqs: SQSClient; consumer: ReturnType<typeof consumerOf> };
  const roles = new Map<string, Role>();
  for (const w of producerWorkers) {
    const sqs = sqsOf(w);
    roles.set(w.id, {
      kind: "producer",
      broadcast: new Broadcast({ tableName: setup.logTable, dynamodb: w.dynamodb, queueUrl: setup.queueUrl, sqs }, { unsafeDedupCheckThenAct: checkThenAct }),
      logOnly: new Broadcast({ tableName: setup.logTable, dynamodb: w.dynamodb }, { unsafeDedupCheckThenAct: checkThenAct }),
      sqs,
    });
  }
  consumerWorkers.forEach((w, i) => {
    const group = GROUPS[i % GROUPS.length]!;
    roles.set(w.id, { kind: "consumer", group, sqs: sqsOf(w), consumer: consumerOf(w, group) });
  });
  const dedupIds = new Map<string, { id: string; dedupId: string }[]>();
  let published = 0;

  await run.loop(async (w) => {
    const role = roles.get(w.id)!;
    if (role.kind === "producer") {
      const spec = (f: string, input: object) => ({ process: w.id, key: stream, f, input });
      const roll = w.random.next();
      if (roll < 0.05) {
        // Crash after taking numbers: the slots stay empty until a consumer fills the run.
        const count = w.random.int(1, MESSAGES_PER_TRANSACTION);
        await recorder.record(spec("allocate-and-crash", { count }), () => new StreamLog(w.dynamodb, setup.logTable).allocate(stream, count));
        return;
      }
      const mine = dedupIds.get(w.id) ?? [];
      dedupIds.set(w.id, mine);
      const again = roll < 0.15 && mine.length > 0 ? w.random.pick(mine) : undefined;
      const id = again?.id ?? `${w.id}-${published++}`;
      const dedupId = again?.dedupId ?? (w.random.chance(checkThenAct ? 0.9 : 0.5) ? `d-${id}` : undefined);
      if (dedupId && !again) mine.push({ id, dedupId });
      const logOnly = roll > 0.9; // crash after writing, before sending
      // The same publish by a second producer at once (an at-least-once retry of the same request).
      const twin = dedupId && w.random.chance(twinShare) ? w.random.pick(producerWorkers.filter((p) => p !== w)) : undefined;
      const twinPublish = async () => {
        if (!twin) return;
        run.faults["duplicate-run"]++;
        await pauseFor(w.random.int(0, 5));
        const other = roles.get(twin.id) as Extract<Role, { kind: "producer" }>;
        await recorder.record({ ...spec("publish", { id, dedupId, logOnly: false }), process: `${twin.id}/dup` }, () => other.broadcast.publish(stream, { id }, { dedupId }));
      };
      const [result] = await Promise.all([recorder.record(spec("publish", { id, dedupId, logOnly }), () => (logOnly ? role.logOnly : role.broadcast).publish(stream, { id }, { dedupId })), twinPublish()]);
      if (result.outcome === "ok" && w.random.chance(0.05)) {
        // A duplicate delivery: the same message sent again under another deduplication id.
        const seq = (result.output as { seq: number }).seq;
        await role.sqs
          .send(new SendMessageCommand({ QueueUrl: setup.queueUrl, MessageGroupId: stream, MessageDeduplicationId: deduplicationId(stream, -seq), MessageBody: JSON.stringify({ stream, seq, payload: { id } }) }))
          .catch(() => undefined);
      }
      await pauseFor(w.random.int(0, 20));
      return;
    }
    // A consumer: one catch-up, sometimes crashed part-way.
    const crash = new AbortController();
    const timer = w.random.chance(0.2) ? setTimeout(() => crash.abort(new Error("consumer crashed")), w.random.int(5, 200)) : undefined;
    try {
      if (role.group === "queue") {
        const out = await role.sqs.send(new ReceiveMessageCommand({ QueueUrl: setup.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
        const seqs = (out.Messages ?? []).map((m) => (JSON.parse(m.Body ?? "{}") as { seq?: number }).seq ?? 0);
        const { position } = await role.consumer.consumer.catchUp({ until: Math.max(0, ...seqs), signal: crash.signal });
        role.consumer.noteCommitted(position);
        const done = (out.Messages ?? []).filter((_, i) => seqs[i]! <= position);
        if (done.length) await role.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: setup.queueUrl, Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
      } else {
        const { position } = await role.consumer.consumer.catchUp({ signal: crash.signal });
        role.consumer.noteCommitted(position);
      }
    } catch {
      // Crashed or faulted: the next round starts again from the cursor.
    } finally {
      clearTimeout(timer);
    }
    await pauseFor(w.random.int(5, 30));
  });

  // Faults off; each group finishes the stream with one more consumer.
  for (const w of run.workers) w.schedule.disable();
  const finisher = run.workers[run.workers.length - 1]!;
  const finalConsumers = GROUPS.map((group) => consumerOf({ ...finisher, id: `${finisher.id}-final-${group}` }, group).consumer);
  const head = await finalConsumers[0]!.log.head(stream);
  for (const c of finalConsumers) await c.catchUp({ until: head });

  const slots = await readAll(finisher.dynamodb, setup.logTable, `log#${stream}`);
  const effects = new Map<string, Map<number, { applied: number; payload: string }>>();
  for (const group of GROUPS) {
    const items = await readAll(finisher.dynamodb, setup.logTable, `effect#${stream}#${group}`);
    effects.set(group, new Map(items.map((i) => [Number(i["sk"]?.N), { applied: Number(i["applied"]?.N ?? 0), payload: i["payload"]?.S ?? "" }])));
  }
  const cursors = new Map(await Promise.all(GROUPS.map(async (g) => [g, await finalConsumers[0]!.log.cursor(stream, g)] as const)));
  return run.finish({
    control,
    invariants: (history) => broadcastAnomalies({ stream, head, slots: slots.flatMap((item) => parseSlot(item) ?? []), effects, cursors, history, handled }),
    stats: (history) => ({
      "publishes ok": history.filter((op) => op.f === "publish" && op.outcome === "ok").length,
      "log head": head,
      "no-ops": slots.filter((s) => s["kind"]?.S === "noop").length,
      "effects applied": [...effects.values()].reduce((n, m) => n + m.size, 0),
    }),
  });
}

async function readAll(dynamodb: DynamoDBClient, tableName: string, pk: string) {
  const items: Record<string, AttributeValue>[] = [];
  for await (const page of paginateQuery({ client: dynamodb }, { TableName: tableName, KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": { S: pk } }, ConsistentRead: true })) {
    items.push(...(page.Items ?? []));
  }
  return items;
}

interface Observed {
  stream: string;
  head: number;
  slots: Slot[];
  effects: Map<string, Map<number, { applied: number; payload: string }>>;
  cursors: Map<string, number>;
  history: readonly Operation[];
  handled: Map<string, { seq: number; committedBefore: number }[]>;
}

export function broadcastAnomalies(o: Observed): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const add = (kind: string, detail: string, operations: Operation[] = []) => anomalies.push({ kind, key: o.stream, detail, operations });
  const bySeq = new Map(o.slots.map((s) => [s.seq, s]));
  for (let seq = 1; seq <= o.head; seq++) if (!bySeq.has(seq)) add("permanent-gap", `slot ${seq} (of ${o.head}) is still empty after the final catch-up`);
  for (const [group, cursor] of o.cursors) if (cursor !== o.head) add("permanent-gap", `group '${group}' stopped at ${cursor} of ${o.head}`);

  const attempted = new Set(o.history.filter((op) => op.f === "publish").map((op) => (op.input as { id: string }).id));
  const payloadSeqs = new Map<string, number[]>();
  const dedupSeqs = new Map<string, number[]>();
  for (const slot of o.slots) {
    if (slot.kind !== "message") continue;
    const id = (JSON.parse(slot.payload) as { id: string }).id;
    if (!attempted.has(id)) add("not-published", `slot ${slot.seq} holds '${id}', which nobody published`);
    payloadSeqs.set(id, [...(payloadSeqs.get(id) ?? []), slot.seq]);
    if (slot.dedupId) dedupSeqs.set(slot.dedupId, [...(dedupSeqs.get(slot.dedupId) ?? []), slot.seq]);
  }
  for (const [id, seqs] of payloadSeqs) if (seqs.length > 1) add("duplicate-message", `'${id}' is in slots ${seqs.join(", ")}`);
  for (const [d, seqs] of dedupSeqs) if (seqs.length > 1) add("duplicate-message", `dedup id '${d}' is in slots ${seqs.join(", ")}`);

  for (const op of o.history.filter((op) => op.f === "publish" && op.outcome === "ok")) {
    const { seq } = op.output as { seq: number };
    const slot = bySeq.get(seq);
    const id = (op.input as { id: string }).id;
    if (slot?.kind !== "message" || (JSON.parse(slot.payload) as { id: string }).id !== id) {
      add("lost-publish", `publish of '${id}' was acknowledged at seq ${seq}, but the slot holds ${slot ? slot.kind === "message" ? slot.payload : "a no-op" : "nothing"}`, [op]);
    }
    for (const [group, applied] of o.effects) if (!applied.has(seq)) add("lost-publish", `group '${group}' never applied acknowledged seq ${seq} ('${id}')`, [op]);
  }

  for (const [group, applied] of o.effects) {
    for (const [seq, effect] of applied) {
      if (effect.applied > 1) add("duplicate-delivery", `group '${group}' applied seq ${seq} ${effect.applied} times`);
      const slot = bySeq.get(seq);
      if (slot?.kind !== "message") add("disagreement", `group '${group}' applied seq ${seq}, which holds ${slot ? "a no-op" : "nothing"}`);
      else if (JSON.stringify(JSON.parse(slot.payload)) !== effect.payload) add("disagreement", `group '${group}' applied ${effect.payload} at seq ${seq}, the log holds ${slot.payload}`);
    }
    for (const slot of o.slots) if (slot.kind === "message" && !applied.has(slot.seq)) add("disagreement", `group '${group}' never applied seq ${slot.seq}`);
  }

  for (const [consumer, calls] of o.handled) {
    for (const call of calls) {
      if (call.seq <= call.committedBefore) add("out-of-order", `consumer ${consumer} handled seq ${call.seq} after it had seen the cursor at ${call.committedBefore}`);
    }
  }
  return anomalies;
}
