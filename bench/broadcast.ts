/**
 * Broadcast benchmark on the embedded local cloud: Fencepost's total order broadcast
 * against plain SQS FIFO (the transport alone, no total order beyond one group, no
 * gap-free numbering, 5-minute deduplication), measured side by side in one run.
 *
 *   npm run bench:broadcast -- [--seconds 5] [--messages 300] [--write]
 *
 * Figures: DynamoDB and SQS requests per message (deterministic), messages/s for one
 * publisher one at a time and batched, and end-to-end latency (publish call to handler)
 * p50/p99 with a consumer taking hints from the queue.
 * --write replaces the Broadcast section of BENCHMARKS.md.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, DeleteMessageBatchCommand, PurgeQueueCommand, ReceiveMessageCommand, SendMessageBatchCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { RequestCounter } from "../lib/check/middleware.js";
import type { LocalCloud } from "../lib/local/index.js";
import { withLocalCloud } from "./cloud.js";
import { Broadcast, ConsumerGroup } from "../lib/index.js";
import { percentile, publishSection } from "./report.js";

const { values: args } = parseArgs({
  options: { seconds: { type: "string", default: "5" }, messages: { type: "string", default: "300" }, write: { type: "boolean", default: false } },
});
const SECONDS = Number(args.seconds);
const MESSAGES = Number(args.messages);

interface Setup {
  cloud: LocalCloud;
  queueUrl: string;
  logTable: string;
  dynamodb: DynamoDBClient;
  sqs: SQSClient;
  requests: RequestCounter;
}

function setup(cloud: LocalCloud): Setup {
  const dynamodb = new DynamoDBClient(cloud.clientConfig("dynamodb"));
  const sqs = new SQSClient(cloud.clientConfig("sqs"));
  const requests = new RequestCounter();
  requests.attach(dynamodb);
  requests.attach(sqs);
  return { cloud, queueUrl: cloud.queues["broadcast"]!.url, logTable: cloud.tables["log"]!, dynamodb, sqs, requests };
}

const broadcastOf = (s: Setup) => new Broadcast({ tableName: s.logTable, dynamodb: s.dynamodb, queueUrl: s.queueUrl, sqs: s.sqs });

/** Requests per message to publish `n` messages, one at a time or in one batch, and to consume them (transactional consumer). */
async function requestsPerMessage(s: Setup, n: number) {
  const stream = `bench-${randomUUID().slice(0, 8)}`;
  const b = broadcastOf(s);
  s.requests.reset();
  for (let i = 0; i < n; i++) await b.publish(stream, { i });
  const single = s.requests.total / n;
  s.requests.reset();
  await b.publishBatch(stream, Array.from({ length: n }, (_, i) => ({ payload: { i } })));
  const batched = s.requests.total / n;
  const consumer = new ConsumerGroup({ tableName: s.logTable, dynamodb: s.dynamodb, stream, group: "bench", transactional: () => [] });
  s.requests.reset();
  await consumer.catchUp();
  const consume = s.requests.total / (2 * n);
  // The peer: one SendMessage per message; receive and delete in tens.
  const group = `peer-${randomUUID().slice(0, 8)}`;
  s.requests.reset();
  for (let i = 0; i < n; i++) await s.sqs.send(new SendMessageCommand({ QueueUrl: s.queueUrl, MessageGroupId: group, MessageDeduplicationId: randomUUID(), MessageBody: "{}" }));
  const peerSingle = s.requests.total / n;
  await s.sqs.send(new PurgeQueueCommand({ QueueUrl: s.queueUrl }));
  return { single, batched, consume, peerSingle, peerBatched: 1 / 10, peerConsume: 2 / 10 };
}

/** Messages per second for `seconds`: publish one at a time, then batches of 25; the peer sends one at a time, then batches of 10. */
async function throughput(s: Setup, seconds: number) {
  const rate = async (send: () => Promise<number>) => {
    const end = performance.now() + seconds * 1000;
    let sent = 0;
    const started = performance.now();
    while (performance.now() < end) sent += await send();
    return sent / ((performance.now() - started) / 1000);
  };
  const b = broadcastOf(s);
  const stream = `bench-${randomUUID().slice(0, 8)}`;
  const single = await rate(async () => (await b.publish(stream, { t: 1 }), 1));
  const batched = await rate(async () => (await b.publishBatch(stream, Array.from({ length: 25 }, () => ({ payload: { t: 1 } })))).length);
  const group = `peer-${randomUUID().slice(0, 8)}`;
  const peerSingle = await rate(async () => (await s.sqs.send(new SendMessageCommand({ QueueUrl: s.queueUrl, MessageGroupId: group, MessageDeduplicationId: randomUUID(), MessageBody: "{}" })), 1));
  const peerBatched = await rate(async () => {
    await s.sqs.send(new SendMessageBatchCommand({ QueueUrl: s.queueUrl, Entries: Array.from({ length: 10 }, (_, i) => ({ Id: String(i), MessageGroupId: group, MessageDeduplicationId: randomUUID(), MessageBody: "{}" })) }));
    return 10;
  });
  await s.sqs.send(new PurgeQueueCommand({ QueueUrl: s.queueUrl }));
  return { single, batched, peerSingle, peerBatched };
}

/** Publish-to-handler latency for `n` messages published 20 ms apart, with a consumer on the queue. */
async function latency(s: Setup, n: number) {
  const stream = `bench-${randomUUID().slice(0, 8)}`;
  const latencies: number[] = [];
  const consumer = new ConsumerGroup<{ t: number }>({ tableName: s.logTable, dynamodb: s.dynamodb, stream, group: "latency", handler: (m) => void latencies.push(performance.now() - m.payload.t) });
  const stop = new AbortController();
  const running = consumer.run({ signal: stop.signal, sqs: s.sqs, queueUrl: s.queueUrl });
  const b = broadcastOf(s);
  for (let i = 0; i < n; i++) {
    await b.publish(stream, { t: performance.now() });
    await new Promise((r) => setTimeout(r, 20));
  }
  while (latencies.length < n) await new Promise((r) => setTimeout(r, 20));
  stop.abort();
  await running;
  // The peer: send, and a receiver that deletes what it gets, on a FIFO queue of its own
  // (the consumer above may have left received messages in flight on the broadcast queue).
  const { QueueUrl: peerQueue } = await s.sqs.send(new CreateQueueCommand({ QueueName: `peer-${randomUUID().slice(0, 8)}.fifo`, Attributes: { FifoQueue: "true" } }));
  const group = `peer-${randomUUID().slice(0, 8)}`;
  const peer: number[] = [];
  const receiving = (async () => {
    while (peer.length < n) {
      const out = await s.sqs.send(new ReceiveMessageCommand({ QueueUrl: peerQueue, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
      for (const m of out.Messages ?? []) {
        const body = JSON.parse(m.Body ?? "{}") as { peer?: string; t: number };
        if (body.peer === group) peer.push(performance.now() - body.t);
      }
      if (out.Messages?.length) await s.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: peerQueue, Entries: out.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
    }
  })();
  for (let i = 0; i < n; i++) {
    await s.sqs.send(new SendMessageCommand({ QueueUrl: peerQueue, MessageGroupId: group, MessageDeduplicationId: randomUUID(), MessageBody: JSON.stringify({ peer: group, t: performance.now() }) }));
    await new Promise((r) => setTimeout(r, 20));
  }
  await receiving;
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), peerP50: percentile(peer, 50), peerP99: percentile(peer, 99) };
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);

await withLocalCloud(async (cloud) => {
  const s = setup(cloud);
  process.stderr.write("requests per message...\n");
  const req = await requestsPerMessage(s, 50);
  process.stderr.write(`throughput (${SECONDS} s phases)...\n`);
  // Warm-up, then the measured run.
  await throughput(s, 1);
  const tp = await throughput(s, SECONDS);
  process.stderr.write(`latency (${MESSAGES} messages)...\n`);
  const lat = await latency(s, MESSAGES);
  const section = [
    "## Broadcast",
    "",
    `\`npm run bench:broadcast -- --seconds ${SECONDS} --messages ${MESSAGES}\` on the embedded local cloud (DynamoDB Local, fauxqs), ${new Date().toISOString().slice(0, 10)}.`,
    "The peer is plain SQS FIFO: ordered within a message group only, no gap-free numbering, deduplication for 5 minutes, no exactly-once effects.",
    "",
    "| measure | Fencepost | SQS FIFO alone | ratio |",
    "| --- | --- | --- | --- |",
    `| requests per message, publish one at a time (DynamoDB + SQS) | ${fmt(req.single)} | ${fmt(req.peerSingle)} | ${fmt(req.single / req.peerSingle)}x |`,
    `| requests per message, publish in batches (25 / 10) | ${fmt(req.batched)} | ${fmt(req.peerBatched)} | ${fmt(req.batched / req.peerBatched)}x |`,
    `| requests per message, consume (transactional, from the log) | ${fmt(req.consume)} | ${fmt(req.peerConsume)} (computed: receive + delete per 10) | ${fmt(req.consume / req.peerConsume)}x |`,
    `| messages/s, one publisher, one at a time | ${fmt(tp.single, 0)} | ${fmt(tp.peerSingle, 0)} | ${fmt(tp.single / tp.peerSingle)}x |`,
    `| messages/s, one publisher, batched | ${fmt(tp.batched, 0)} | ${fmt(tp.peerBatched, 0)} | ${fmt(tp.batched / tp.peerBatched)}x |`,
    `| end-to-end latency p50 (ms) | ${fmt(lat.p50, 1)} | ${fmt(lat.peerP50, 1)} | ${fmt(lat.p50 / lat.peerP50)}x |`,
    `| end-to-end latency p99 (ms) | ${fmt(lat.p99, 1)} | ${fmt(lat.peerP99, 1)} | ${fmt(lat.p99 / lat.peerP99)}x |`,
    "",
    "Caveat: the peer runs in-process (fauxqs, JavaScript) while DynamoDB Local is a Java server over HTTP, so the throughput and latency ratios overstate the gap AWS would show; the request counts are exact.",
    "",
    "Publishing one message takes 3 requests: the sequencer ADD, one transaction writing the slot (and the dedup record), one SendMessageBatch. Batching shares all three among up to 25 messages (10 per SQS batch). Consuming from the log costs one Query per 100 slots plus one transaction per message (effects and cursor together).",
    "",
  ].join("\n");
  publishSection("Broadcast", section, { write: args.write });
  s.dynamodb.destroy();
  s.sqs.destroy();
});
