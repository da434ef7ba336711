/**
 * Group commit under faults, against DynamoDB Local: three producer processes (a Broadcast
 * each) with eight concurrent publishers apiece, so that their publishes are grouped, and
 * random SDK faults on every producer request (lost requests, lost responses, throttling,
 * 5xx, late delivery of a request the client gave up on); some dedup ids are published by
 * two producers at once (twins) or again by the same producer, and some producers crash
 * after taking numbers. Two transactional consumer groups deliver the stream meanwhile.
 * The history is checked with the verification harness's broadcast checker (agreement, no
 * permanent gap, no lost acknowledged publish, no duplicate, integrity, order).
 * Negative control: the same run with check-then-act dedup (the harness's hook) and every
 * dedup id published by twins is caught publishing one dedup id twice.
 */
import { QueryCommand, type DynamoDBClient, type TransactWriteItem } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { broadcastAnomalies } from "../../lib/check/index.js";
import { HistoryRecorder } from "../../lib/check/history.js";
import { injectFaults, type FaultKind } from "../../lib/check/middleware.js";
import { Broadcast, ConsumerGroup } from "../../lib/index.js";
import { MESSAGES_PER_TRANSACTION, parseSlot, StreamLog } from "../../lib/advanced.js";
import { dynamoDbClient, logTable } from "../support/cloud.js";
import { uniqueName } from "../support/locks.js";

const FAULTS: FaultKind[] = ["lose-request", "lose-response", "throttle", "server-error", "late-delivery"];

async function readAll(dynamodb: DynamoDBClient, pk: string) {
  const items = [];
  let start: Record<string, never> | undefined;
  do {
    const out = await dynamodb.send(new QueryCommand({ TableName: logTable(), KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": { S: pk } }, ConsistentRead: true, ExclusiveStartKey: start }));
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey as Record<string, never> | undefined;
  } while (start);
  return items;
}

async function run(options: { checkThenAct: boolean; faultRate: number; twinShare: number; dedupShare: number }) {
  const stream = uniqueName("stream");
  const recorder = new HistoryRecorder();
  const late: Promise<void>[] = [];
  let faulty = true;
  const faults = new Map<string, number>();
  let transactions = 0;
  const producers = ["p0", "p1", "p2"].map((name) => {
    // Two tries per request: most faults reach Broadcast instead of being retried away by the SDK.
    const dynamodb = dynamoDbClient({ maxAttempts: 2 });
    injectFaults(
      dynamodb,
      () => (faulty && Math.random() < options.faultRate ? { kind: FAULTS[Math.floor(Math.random() * FAULTS.length)]!, delayMs: 50 + Math.random() * 250 } : undefined),
      (kind, request) => faults.set(`${kind} ${request.commandName}`, (faults.get(`${kind} ${request.commandName}`) ?? 0) + 1),
      (delivery) => late.push(delivery),
    );
    (dynamodb.middlewareStack as unknown as { add(m: unknown, o: object): void }).add(
      (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => (args: unknown) => {
        if (context.commandName === "TransactWriteItemsCommand") transactions++;
        return next(args);
      },
      { step: "initialize", name: "countTransactions" },
    );
    return { name, dynamodb, broadcast: new Broadcast({ tableName: logTable(), dynamodb }, { unsafeDedupCheckThenAct: options.checkThenAct }) };
  });

  // Two groups, two competing transactional consumers each, on fault-free clients.
  const effectKey = (group: string, seq: number) => ({ pk: { S: `effect#${stream}#${group}` }, sk: { N: String(seq) } });
  const handled = new Map<string, { seq: number; committedBefore: number }[]>();
  const consumers = ["billing", "billing", "audit", "audit"].map((group, i) => {
    const calls: { seq: number; committedBefore: number }[] = [];
    handled.set(`c${i}`, calls);
    let committed = 0;
    const consumer = new ConsumerGroup<{ id: string }>({
      tableName: logTable(),
      dynamodb: dynamoDbClient(),
      stream,
      group,
      holeTimeoutMs: 300,
      transactional: (m): TransactWriteItem[] => {
        calls.push({ seq: m.seq, committedBefore: committed });
        return [{ Update: { TableName: logTable(), Key: effectKey(group, m.seq), UpdateExpression: "ADD applied :one SET payload = :p", ExpressionAttributeValues: { ":one": { N: "1" }, ":p": { S: JSON.stringify(m.payload) } } } }];
      },
    });
    return { consumer, note: (position: number) => (committed = Math.max(committed, position)) };
  });
  let publishing = true;
  const consuming = Promise.all(
    consumers.map(async ({ consumer, note }) => {
      while (publishing) {
        await consumer.catchUp().then(({ position }) => note(position), () => undefined);
        await new Promise((r) => setTimeout(r, 10));
      }
    }),
  );

  let nextId = 0;
  const published = new Map<string, { id: string; dedupId: string }[]>();
  const publish = (p: (typeof producers)[number], process: string, id: string, dedupId: string | undefined) =>
    recorder.record({ process, key: stream, f: "publish", input: { id, dedupId } }, () => p.broadcast.publish(stream, { id }, dedupId === undefined ? {} : { dedupId }));
  await Promise.all(
    producers.flatMap((p, pi) =>
      Array.from({ length: 8 }, async (_, t) => {
        for (let n = 0; n < 6; n++) {
          const roll = Math.random();
          if (roll < 0.04) {
            // A producer crashes after taking numbers, as a group would.
            const count = 1 + Math.floor(Math.random() * MESSAGES_PER_TRANSACTION);
            await new StreamLog(p.dynamodb, logTable()).allocate(stream, count).catch(() => undefined);
            continue;
          }
          const mine = published.get(p.name) ?? [];
          published.set(p.name, mine);
          const again = roll < 0.12 && mine.length > 0 ? mine[Math.floor(Math.random() * mine.length)] : undefined;
          const id = again?.id ?? `${p.name}-${nextId++}`;
          const dedupId = again?.dedupId ?? (Math.random() < options.dedupShare ? `d-${id}` : undefined);
          if (dedupId && !again) mine.push({ id, dedupId });
          const twin = dedupId !== undefined && Math.random() < options.twinShare ? producers[(pi + 1) % producers.length]! : undefined;
          await Promise.all([publish(p, `${p.name}/${t}`, id, dedupId), twin ? publish(twin, `${twin.name}/twin`, id, dedupId) : undefined]);
        }
      }),
    ),
  );
  faulty = false;
  publishing = false;
  await consuming;
  await Promise.all(late); // every request delayed in the network has landed, or failed to
  const head = await new StreamLog(dynamoDbClient(), logTable()).head(stream);
  for (const { consumer, note } of consumers) note((await consumer.catchUp({ until: head })).position);

  const db = dynamoDbClient();
  const slots = (await readAll(db, `log#${stream}`)).flatMap((item) => parseSlot(item) ?? []);
  const effects = new Map<string, Map<number, { applied: number; payload: string }>>();
  for (const group of ["billing", "audit"]) {
    const items = await readAll(db, `effect#${stream}#${group}`);
    effects.set(group, new Map(items.map((i) => [Number(i["sk"]?.N), { applied: Number(i["applied"]?.N ?? 0), payload: i["payload"]?.S ?? "" }])));
  }
  const log = new StreamLog(db, logTable());
  const cursors = new Map([
    ["billing", await log.cursor(stream, "billing")],
    ["audit", await log.cursor(stream, "audit")],
  ]);
  const history = recorder.operations;
  return { anomalies: broadcastAnomalies({ stream, head, slots, effects, cursors, history, handled }), history, head, faults, transactions };
}

describe("group commit under faults", () => {
  it("three producers of eight concurrent publishers each, with random SDK faults, twins and crashes: the broadcast checker finds nothing", async () => {
    const { anomalies, history, faults, transactions } = await run({ checkThenAct: false, faultRate: 0.15, twinShare: 0.3, dedupShare: 0.5 });
    expect(anomalies).toEqual([]);
    const acknowledged = history.filter((op) => op.outcome === "ok").length;
    expect(acknowledged).toBeGreaterThan(100);
    expect(faults.size).toBeGreaterThan(0); // faults were injected
    expect(transactions).toBeLessThan(acknowledged); // and publishes were grouped
  });

  it("negative control: check-then-act dedup with every dedup id published by twins is caught publishing one dedup id twice", async () => {
    const { anomalies } = await run({ checkThenAct: true, faultRate: 0, twinShare: 1, dedupShare: 1 });
    expect(anomalies.map((a) => a.kind)).toContain("duplicate-message");
  });
});
