/**
 * Coordination service benchmark on the embedded local cloud (DynamoDB Local): requests
 * per operation and per keepalive (deterministic, counted by SDK middleware), failure
 * detection time as a multiple of the session ttl, watch latency, changes per second on
 * one namespace, and rebalancing of a group's partitions when a member joins or leaves.
 *
 *   npm run bench:coordination -- [--quick] [--ttl-ms 2000] [--poll-ms 250] [--watch-poll-ms 100]
 *     [--seconds 5] [--repeats 5] [--events 200] [--members 4] [--partitions 64] [--no-write]
 *
 * There is no peer to run beside it: no npm package offers sessions, watches or agreed
 * membership on DynamoDB (dynamodb-lock-client, the locks peer, has locks only), so the
 * figures are absolute and compared with their theoretical limits.
 * --quick is a smoke run (shorter phases, fewer repeats, smaller group) that prints only.
 * Writes the "Coordination service" section of BENCHMARKS.md unless --quick or --no-write.
 */
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";

import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { injectFaults, RequestCounter, type RequestInfo } from "../lib/check/middleware.js";
import { shareOf, type Assignment } from "../lib/coordination/assignment.js";
import { SessionReaper } from "../lib/coordination/reaper.js";
import { Coordination, systemClock, type Session } from "../lib/index.js";
import type { LocalCloud } from "../lib/local/index.js";
import { sleep } from "../lib/internal/time.js";
import { countedDynamoDb, withLocalCloud } from "./cloud.js";
import { byCommand, percentile, publishSection } from "./report.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    "ttl-ms": { type: "string" },
    "poll-ms": { type: "string" },
    "watch-poll-ms": { type: "string" },
    seconds: { type: "string" },
    repeats: { type: "string" },
    events: { type: "string" },
    members: { type: "string" },
    partitions: { type: "string" },
    "no-write": { type: "boolean", default: false },
  },
});
const QUICK = args.quick;
const option = (name: keyof typeof args, normal: number, quick: number): number => {
  const given = args[name];
  return typeof given === "string" ? Number(given) : QUICK ? quick : normal;
};
/** Session ttl of every phase but the per-operation counts (which use a long one, so no keepalive falls inside). */
const TTL_MS = option("ttl-ms", 2000, 1500);
/** Poll interval of group.assignments and of the SessionReaper. */
const POLL_MS = option("poll-ms", 250, 250);
/** Poll interval of the watcher. */
const WATCH_POLL_MS = option("watch-poll-ms", 100, 100);
/** Length of each changes/s phase. */
const SECONDS = option("seconds", 5, 1);
/** Kills per failure detection method; rebalancing runs half as many rounds (rounded up). */
const REPEATS = option("repeats", 5, 2);
/** Changes the watcher receives. */
const EVENTS = option("events", 200, 40);
/** Size k of the rebalanced group: one member leaves (k → k-1), then a new one joins (k-1 → k). */
const MEMBERS = option("members", 4, 3);
/** Partitions of the rebalanced group (N). */
const PARTITIONS = option("partitions", 64, 16);
/** Sessions and ttl periods of the keepalive count. */
const KEEPALIVE_SESSIONS = 10;
const KEEPALIVE_PERIODS = QUICK ? 2 : 5;
/** Concurrent writers of the contended changes/s phase. */
const WRITERS = 4;
/** Members and partitions of the failure detection group. */
const DETECTION_MEMBERS = 3;
const DETECTION_PARTITIONS = 12;
const GROUP = "bench";

const fmt = (n: number, digits = 2) => n.toFixed(digits);
const median = (values: readonly number[]) => percentile(values, 50);
const namespace = () => `bench-${randomUUID().slice(0, 8)}`;
const sorted = (ids: Iterable<string>) => [...ids].sort();

/** Polls `check` every 10 ms until it holds; throws `what` after `timeoutMs`. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20 * TTL_MS + 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`benchmark: ${what} did not happen within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** A session's open or keepalive as it leaves a client: the session's lease runs from its send. */
const isRenewal = (r: RequestInfo) =>
  (r.commandName === "UpdateItemCommand" && String(r.input["UpdateExpression"] ?? "").startsWith("SET #version")) ||
  (r.commandName === "PutItemCommand" && String((r.input["Item"] as Record<string, { S?: string }> | undefined)?.["pk"]?.S).startsWith("sessions#"));
/** A Query of the namespace's sessions: one per failure-detection pass of a member. */
const isSessionsQuery = (r: RequestInfo) => r.commandName === "QueryCommand" && String((r.input["ExpressionAttributeValues"] as Record<string, { S?: string }> | undefined)?.[":pk"]?.S).startsWith("sessions#");

/** A client of its own (own SDK client, own head cache), which can be cut off from DynamoDB. */
class Client {
  readonly dynamodb: DynamoDBClient;
  readonly coord: Coordination;
  /** Wall-clock time the session's open or last keepalive was sent (before the cut). */
  lastRenewalSentAt = 0;
  /** Failure-detection passes (Queries of the sessions) this client sent. */
  detectionPasses = 0;
  #cut = false;

  constructor(cloud: LocalCloud, ns: string, requests?: RequestCounter) {
    this.dynamodb = requests ? countedDynamoDb(cloud, requests) : new DynamoDBClient(cloud.clientConfig("dynamodb"));
    injectFaults(this.dynamodb, (request) => {
      if (this.#cut) return { kind: "lose-request" };
      if (isRenewal(request)) this.lastRenewalSentAt = Date.now();
      if (isSessionsQuery(request)) this.detectionPasses++;
      return undefined;
    });
    this.coord = new Coordination({ tableName: cloud.tables["coordination"]!, dynamodb: this.dynamodb, namespace: ns });
  }

  /** From now on every request of this client is lost: a member killed, or partitioned away. */
  cut(): void {
    this.#cut = true;
  }
}

/** A member of the group running `group.assignments`, its latest assignment kept. */
class Member {
  latest: Assignment | undefined;
  error: unknown;
  signalAbortedAt: number | undefined;
  readonly stop = new AbortController();
  #finished: Promise<void> = Promise.resolve();

  private constructor(
    readonly client: Client,
    readonly session: Session,
  ) {
    session.signal.addEventListener("abort", () => (this.signalAbortedAt = Date.now()), { once: true });
  }

  /** A new client with an open session, not yet in the group. */
  static async open(cloud: LocalCloud, ns: string, requests?: RequestCounter): Promise<Member> {
    const client = new Client(cloud, ns, requests);
    return new Member(client, await client.coord.openSession({ ttlMs: TTL_MS }));
  }

  /**
   * Members that all join before any runs its assignments: each first view already has
   * them all, so no partition has to be handed over from a live member while they settle
   * (see the section's notes on joining).
   */
  static async openJoined(cloud: LocalCloud, ns: string, count: number, partitions: number, requests?: RequestCounter): Promise<Member[]> {
    const members = await Promise.all(Array.from({ length: count }, () => Member.open(cloud, ns, requests)));
    for (const m of members) await m.client.coord.group(GROUP).join(m.session);
    for (const m of members) m.run(partitions);
    return members;
  }

  get id(): string {
    return this.session.id;
  }

  /** Starts `group.assignments` (it joins, if not in yet). */
  run(partitions: number): void {
    this.#finished = (async () => {
      try {
        for await (const a of this.client.coord.group(GROUP).assignments(this.session, { partitions, pollMs: POLL_MS, signal: this.stop.signal })) this.latest = a;
      } catch (err) {
        this.error = err;
      }
    })();
  }

  /** Stops its assignments (it releases its partitions). */
  async stopRunning(): Promise<void> {
    this.stop.abort();
    await this.#finished;
  }

  /** Stops its assignments and closes its session (it leaves the view). */
  async leave(): Promise<void> {
    await this.stopRunning();
    await this.session.close();
  }

  destroy(): void {
    this.client.dynamodb.destroy();
  }
}

/** Each partition's assignee (owned or pending) if `members` agree on a view of exactly themselves. */
function assignees(members: readonly Member[]): Map<number, string> | undefined {
  const ids = sorted(members.map((m) => m.id)).join();
  const out = new Map<number, string>();
  for (const m of members) {
    const a = m.latest;
    if (!a || sorted(a.members).join() !== ids) return undefined;
    for (const p of [...a.partitions.map((g) => g.id), ...a.pending]) out.set(p, m.id);
  }
  return out;
}

/** Partition owners if `members` agree on a view of exactly themselves and own all `total` partitions, none twice, none pending. */
function settled(members: readonly Member[], total: number): Map<number, string> | undefined {
  if (!assignees(members) || members.some((m) => m.latest!.pending.length > 0)) return undefined;
  const owners = new Map<number, string>();
  for (const m of members) {
    for (const p of m.latest!.partitions) {
      if (owners.has(p.id)) return undefined;
      owners.set(p.id, m.id);
    }
  }
  return owners.size === total ? owners : undefined;
}

const describeMembers = (members: readonly Member[]) =>
  members.map((m) => `${m.id.slice(0, 8)}: ${m.latest ? `epoch ${m.latest.epoch}, members ${m.latest.members.map((id) => id.slice(0, 8)).join(",")}, owns ${m.latest.partitions.map((p) => p.id).join(",")}, pending ${m.latest.pending.join(",")}` : "no assignment yet"}`).join("\n  ");

/** Waits for `members` to settle (see settled); throws after `timeoutMs`, with each member's last assignment. */
async function waitSettled(what: string, members: readonly Member[], total: number, timeoutMs?: number): Promise<Map<number, string>> {
  let owners: Map<number, string> | undefined;
  try {
    await waitFor(
      what,
      () => {
        const failed = members.find((m) => m.error !== undefined);
        if (failed) throw new Error(`benchmark: a member's assignments failed during ${what}`, { cause: failed.error });
        return (owners = settled(members, total)) !== undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n  ${describeMembers(members)}`, { cause: err });
  }
  return owners!;
}

// ---------------------------------------------------------------------------------------
// Deterministic: requests per operation

interface Counted {
  label: string;
  perOperation: number;
  byCommand: string;
  expected: string;
}

async function requestsPerOperation(cloud: LocalCloud): Promise<Counted[]> {
  const requests = new RequestCounter();
  const ns = namespace();
  const { coord } = new Client(cloud, ns, requests);
  // Sessions whose keepalives must not be counted live on a client of their own; a ttl of
  // a minute puts their first keepalive (ttl/3) after the counts.
  const helper = new Client(cloud, ns).coord;
  const ttlMs = 60_000;
  const N = 20;
  const rows: Counted[] = [];
  const count = async (label: string, expected: string, run: (i: number) => Promise<unknown>, prepare?: (i: number) => Promise<unknown>) => {
    for (let i = 0; i < N; i++) await prepare?.(i);
    requests.reset();
    for (let i = 0; i < N; i++) await run(i);
    rows.push({ label, perOperation: requests.total / N, byCommand: byCommand(requests, N), expected });
  };
  let revision = (await coord.put("k", 0)).revision; // the client's first write reads the head once
  await count("put (key exists)", "1", async (i) => (revision = (await coord.put("k", i)).revision));
  await count("put (new key)", "1", (i) => coord.put(`new/${i}`, i));
  await count("get", "1", () => coord.get("k"));
  for (let i = 0; i < 10; i++) await coord.put(`list/${i}`, i);
  await count("list (10 keys, one page)", "3: head, keys, head again", () => coord.list("list/"));
  await count("compareAndSet, succeeds", "1", async (i) => {
    const r = await coord.compareAndSet("k", revision, i);
    if (!r.ok) throw new Error("benchmark: compareAndSet refused");
    revision = r.revision;
  });
  await count("compareAndSet, refused (stale revision)", "1", (i) => coord.compareAndSet("k", 1, i));
  await count("delete", "1", (i) => coord.delete(`new/${i}`));
  // The helper's put (its own, uncounted client) moves the head first, so each counted put meets a stale head.
  await count("put after another client changed the namespace", "2: one refused on the head, one retry", async (i) => {
    await helper.put(`other/${i}`, i);
    await coord.put("k", i);
  });
  const bound = await helper.openSession({ ttlMs });
  await count("put, ephemeral (bound to a session)", "1", (i) => coord.put(`eph/${i}`, i, { session: bound }));
  await bound.close();
  const opened: Session[] = [];
  await count("openSession", "1", async () => opened.push(await coord.openSession({ ttlMs })));
  await count("session.close (one ephemeral key)", "4: session, key, commit (the end, deleting the key), session again (a key a racing put bound)", (i) => opened[i]!.close(), (i) => coord.put(`close/${i}`, i, { session: opened[i]! }));
  const joining: Session[] = [];
  await count("group.join", "1", (i) => coord.group(GROUP).join(joining[i]!), async () => joining.push(await helper.openSession({ ttlMs })));
  await count(`group.view (${N} members)`, "3: head, members, head again", () => coord.group(GROUP).view());
  await Promise.all(joining.map((s) => s.close()));
  // A watch's idle poll: how many requests per poll (one Query of the change log each).
  const stop = new AbortController();
  requests.reset();
  const idle = (async () => {
    for await (const _ of coord.watch("nothing/", { fromRevision: (await helper.revision()) + 1, pollMs: 20, signal: stop.signal })) void _;
  })();
  await sleep(1000);
  stop.abort();
  await idle;
  const polls = requests.byCommand.get("QueryCommand") ?? 1;
  rows.push({ label: "watch, one idle poll", perOperation: requests.total / polls, byCommand: byCommand(requests, polls), expected: "1, plus a head read on the first empty poll and every minute of empty polls (watch.ts)" });
  // A watch catching up: 50 changes waiting.
  const from = (await helper.revision()) + 1;
  for (let i = 0; i < 50; i++) await helper.put(`catch-up/${i}`, i);
  requests.reset();
  let seen = 0;
  for await (const _ of coord.watch("catch-up/", { fromRevision: from })) if (++seen === 50) break;
  rows.push({ label: "watch, catching up 50 changes (per change)", perOperation: requests.total / 50, byCommand: byCommand(requests, 50), expected: "1/100: one Query per 100 changes" });
  return rows;
}

// ---------------------------------------------------------------------------------------
// Deterministic: keepalives

interface Keepalives {
  perSessionPerTtl: number;
  other: number;
  lost: number;
}

async function keepalives(cloud: LocalCloud): Promise<Keepalives> {
  const requests = new RequestCounter();
  const client = new Client(cloud, namespace(), requests);
  const sessions = await Promise.all(Array.from({ length: KEEPALIVE_SESSIONS }, () => client.coord.openSession({ ttlMs: TTL_MS })));
  // One ephemeral key each: closing a session that never bound a key fails as this is written
  // (the session-ending commit names #keys without using it: a ValidationException).
  for (const [i, s] of sessions.entries()) await client.coord.put(`eph/${i}`, i, { session: s });
  requests.reset();
  const started = performance.now();
  await sleep(KEEPALIVE_PERIODS * TTL_MS);
  const periods = (performance.now() - started) / TTL_MS;
  const updates = requests.byCommand.get("UpdateItemCommand") ?? 0;
  const other = requests.total - updates;
  const lost = sessions.filter((s) => !s.live).length;
  await Promise.all(sessions.map((s) => s.close()));
  client.dynamodb.destroy();
  return { perSessionPerTtl: updates / KEEPALIVE_SESSIONS / periods, other, lost };
}

// ---------------------------------------------------------------------------------------
// Failure detection

interface Detection {
  /** From the cut to the expiry's commit, in ttls. */
  fromKill: number;
  /** From the send of the victim's last keepalive (or its open) to the expiry's commit, in ttls. */
  fromKeepalive: number;
  /** From the cut to the survivors owning every partition, in ttls (groups only). */
  rebalanced: number | undefined;
  /** The victim's session signal aborted before the expiry was committed. */
  signalFirst: boolean;
  /** Why a surviving member's assignments failed meanwhile, if one did (groups only). */
  survivorFailure: string | undefined;
}

/** The wall-clock time (change log `at`) at which `session` was declared expired. */
async function expiredAt(coord: Coordination, session: string): Promise<number> {
  for (let after = 0; ; ) {
    const changes = await coord.store.readChanges(coord.namespace, after, 100);
    const found = changes.find((c) => c.type === "delete" && c.cause === "session-expired" && c.session === session);
    if (found) return found.at;
    if (changes.length === 0) throw new Error(`benchmark: no expiry of session ${session} in the change log`);
    after = changes[changes.length - 1]!.revision;
  }
}

/** A member of a group running group.assignments (failure detection on) is cut off; the others expire it and take its partitions. */
async function detectionInGroup(cloud: LocalCloud): Promise<Detection> {
  const ns = namespace();
  const members = await Member.openJoined(cloud, ns, DETECTION_MEMBERS, DETECTION_PARTITIONS);
  const [victim, ...survivors] = members as [Member, ...Member[]];
  await waitSettled("the detection group settling", members, DETECTION_PARTITIONS);
  await sleep(Math.random() * TTL_MS); // a random phase against the victim's keepalives
  victim.client.cut();
  const cutAt = Date.now();
  let rebalancedAt: number | undefined;
  try {
    await waitSettled("the survivors taking the victim's partitions", survivors, DETECTION_PARTITIONS);
    rebalancedAt = Date.now();
  } catch (err) {
    if (!survivors.some((m) => m.error !== undefined)) throw err;
  }
  const failed = survivors.find((m) => m.error !== undefined)?.error;
  const expired = await expiredAt(survivors[0]!.client.coord, victim.id);
  await Promise.all(survivors.map((m) => m.leave()));
  await victim.stopRunning();
  for (const m of members) m.destroy();
  return {
    fromKill: (expired - cutAt) / TTL_MS,
    fromKeepalive: (expired - victim.client.lastRenewalSentAt) / TTL_MS,
    rebalanced: rebalancedAt === undefined ? undefined : (rebalancedAt - cutAt) / TTL_MS,
    signalFirst: victim.signalAbortedAt !== undefined && victim.signalAbortedAt <= expired,
    survivorFailure: failed === undefined ? undefined : `${(failed as Error).name}: ${(failed as Error).message}`,
  };
}

/** A session with an ephemeral key is cut off while a SessionReaper watches the namespace. */
async function detectionByReaper(cloud: LocalCloud): Promise<Detection> {
  const ns = namespace();
  const victim = new Client(cloud, ns);
  const observer = new Client(cloud, ns);
  const session = await victim.coord.openSession({ ttlMs: TTL_MS });
  let signalAbortedAt: number | undefined;
  session.signal.addEventListener("abort", () => (signalAbortedAt = Date.now()), { once: true });
  await victim.coord.put("ephemeral", 1, { session });
  const stop = new AbortController();
  const reaping = new SessionReaper(observer.coord.store, ns, systemClock).run({ signal: stop.signal, pollMs: POLL_MS });
  await sleep(Math.random() * TTL_MS);
  victim.cut();
  const cutAt = Date.now();
  await waitFor("the reaper expiring the session", async () => (await observer.coord.get("ephemeral")) === undefined);
  stop.abort();
  await reaping;
  const expired = await expiredAt(observer.coord, session.id);
  victim.dynamodb.destroy();
  observer.dynamodb.destroy();
  return {
    fromKill: (expired - cutAt) / TTL_MS,
    fromKeepalive: (expired - victim.lastRenewalSentAt) / TTL_MS,
    rebalanced: undefined,
    signalFirst: signalAbortedAt !== undefined && signalAbortedAt <= expired,
    survivorFailure: undefined,
  };
}

// ---------------------------------------------------------------------------------------
// Watch latency

interface WatchLatency {
  p50: number;
  p99: number;
  min: number;
  max: number;
}

/** Puts at random intervals; the time from each put's resolution to a watcher's receipt of it. */
async function watchLatency(cloud: LocalCloud): Promise<WatchLatency> {
  const ns = namespace();
  const writer = new Client(cloud, ns);
  const watcher = new Client(cloud, ns);
  const resolved = new Map<number, number>();
  const received = new Map<number, number>();
  const stop = new AbortController();
  const watching = (async () => {
    for await (const event of watcher.coord.watch("w/", { fromRevision: 1, pollMs: WATCH_POLL_MS, signal: stop.signal })) received.set(event.revision, performance.now());
  })();
  for (let i = 0; i < 5; i++) await writer.coord.put("warm", i); // not under the prefix
  for (let i = 0; i < EVENTS; i++) {
    await sleep(Math.random() * WATCH_POLL_MS); // a random phase against the watcher's polls
    const { revision } = await writer.coord.put(`w/${i % 10}`, i);
    resolved.set(revision, performance.now());
  }
  await waitFor("the watcher receiving every change", () => [...resolved.keys()].every((r) => received.has(r)));
  stop.abort();
  await watching;
  writer.dynamodb.destroy();
  watcher.dynamodb.destroy();
  const latencies = [...resolved].map(([revision, at]) => received.get(revision)! - at);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), min: Math.min(...latencies), max: Math.max(...latencies) };
}

// ---------------------------------------------------------------------------------------
// Changes per second on one namespace

interface Throughput {
  writers: number;
  perSecond: number;
  requestsPerChange: number;
  byCommand: string;
  /** Commit attempts refused because another writer took the revision, per change. */
  refusedPerChange: number;
  /** The namespace's revision moved by exactly the number of changes acknowledged. */
  gapFree: boolean;
}

async function changesPerSecond(cloud: LocalCloud, writers: number): Promise<Throughput> {
  const requests = new RequestCounter();
  const ns = namespace();
  const clients = Array.from({ length: writers }, () => new Client(cloud, ns, requests));
  for (const [w, c] of clients.entries()) await c.coord.put(`warm/${w}`, 0); // every client has read the head once
  const before = await clients[0]!.coord.revision();
  requests.reset();
  let changes = 0;
  const started = performance.now();
  const end = started + SECONDS * 1000;
  await Promise.all(
    clients.map(async (c, w) => {
      for (let i = 0; performance.now() < end; i++) {
        await c.coord.put(`k/${w}/${i % 20}`, i);
        changes++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const counts = { total: requests.total, commits: requests.byCommand.get("TransactWriteItemsCommand") ?? 0, byCommand: byCommand(requests, changes) };
  const after = await clients[0]!.coord.revision();
  for (const c of clients) c.dynamodb.destroy();
  return {
    writers,
    perSecond: changes / seconds,
    requestsPerChange: counts.total / changes,
    byCommand: counts.byCommand,
    refusedPerChange: (counts.commits - changes) / changes,
    gapFree: after - before === changes,
  };
}

// ---------------------------------------------------------------------------------------
// Rebalancing

interface Rebalance {
  /** Time until every member's assignment is computed from the new view. */
  viewMs: number;
  /** Time until every member owns its share, none pending; undefined if that did not happen within the wait. */
  ms: number | undefined;
  /** Partitions whose assignee (owned or pending) changed. */
  moved: number;
  /** What minimal movement moves: the partitions whose rendezvous owner changed (the leaver's, or the joiner's share). */
  predicted: number;
  /** Partitions still pending (not handed over) when the wait ended. */
  stuck: number;
}

interface Rebalancing {
  leave: Rebalance[];
  join: Rebalance[];
  /** Steady group: requests per member per poll (keepalives excluded), and by command. */
  perPoll: number;
  perPollByCommand: string;
}

/** How long a join may take to settle before it is reported as not settled. */
const JOIN_WAIT_MS = Math.max(5000, 20 * POLL_MS);

const movedBetween = (before: ReadonlyMap<number, string>, after: ReadonlyMap<number, string>) => [...after].filter(([p, owner]) => before.get(p) !== owner).length;

/** A group of k members with N partitions: one leaves (k → k-1), then a new one joins (k-1 → k). */
async function rebalanceRound(cloud: LocalCloud, steady?: RequestCounter): Promise<{ leave: Rebalance; join: Rebalance; perPoll?: { requests: number; byCommand: string } }> {
  const ns = namespace();
  const members = await Member.openJoined(cloud, ns, MEMBERS, PARTITIONS, steady);
  const initial = await waitSettled("the group settling", members, PARTITIONS);
  let perPoll: { requests: number; byCommand: string } | undefined;
  if (steady) {
    // A settled group polling, no change: what each poll of each member costs.
    steady.reset();
    const passes = members.reduce((n, m) => n + m.client.detectionPasses, 0);
    const window = Math.max(2000, 8 * POLL_MS);
    await sleep(window);
    const polls = members.reduce((n, m) => n + m.client.detectionPasses, 0) - passes;
    const keepalives = steady.byCommand.get("UpdateItemCommand") ?? 0;
    steady.byCommand.delete("UpdateItemCommand");
    perPoll = { requests: steady.total / polls, byCommand: `${byCommand(steady, polls)}; keepalives apart (${fmt(keepalives / members.length / (window / TTL_MS), 1)} per member per ttl)` };
  }
  // Leave: its assignments stop (it releases its partitions), its session closes (it leaves the view).
  const [leaver, ...rest] = members as [Member, ...Member[]];
  let started = performance.now();
  await leaver.leave();
  await waitFor("the members seeing the leave", () => assignees(rest) !== undefined);
  const leaveViewMs = performance.now() - started;
  const left = await waitSettled("the group after a member left", rest, PARTITIONS);
  const leave = { viewMs: leaveViewMs, ms: performance.now() - started, moved: movedBetween(initial, left), predicted: [...initial.values()].filter((owner) => owner === leaver.id).length, stuck: 0 };
  // Join: a new member runs its assignments; the others must hand its share over.
  started = performance.now();
  const joiner = await Member.open(cloud, ns);
  joiner.run(PARTITIONS);
  const grown = [...rest, joiner];
  await waitFor("the members seeing the join", () => assignees(grown) !== undefined);
  const joinViewMs = performance.now() - started;
  let ms: number | undefined;
  try {
    await waitSettled("the group taking in a new member", grown, PARTITIONS, JOIN_WAIT_MS);
    ms = performance.now() - started;
  } catch (err) {
    if (grown.some((m) => m.error !== undefined)) throw err;
    const pending = grown.reduce((n, m) => n + (m.latest?.pending.length ?? 0), 0);
    process.stderr.write(`  the join did not settle within ${JOIN_WAIT_MS} ms: ${pending} partitions still pending\n`);
  }
  const assigned = assignees(grown);
  if (!assigned) throw new Error(`benchmark: the members do not agree on a view with the joiner:\n  ${describeMembers(grown)}`);
  const join = {
    viewMs: joinViewMs,
    ms,
    moved: movedBetween(left, assigned),
    predicted: shareOf(joiner.id, grown.map((m) => m.id), PARTITIONS).length,
    stuck: grown.reduce((n, m) => n + (m.latest?.pending.length ?? 0), 0),
  };
  await Promise.all(grown.map((m) => m.leave()));
  for (const m of [...members, joiner]) m.destroy();
  return perPoll ? { leave, join, perPoll } : { leave, join };
}

async function rebalancing(cloud: LocalCloud): Promise<Rebalancing> {
  const out: Rebalancing = { leave: [], join: [], perPoll: NaN, perPollByCommand: "" };
  for (let round = 0; round < Math.max(1, Math.ceil(REPEATS / 2)); round++) {
    const r = await rebalanceRound(cloud, round === 0 ? new RequestCounter() : undefined);
    out.leave.push(r.leave);
    out.join.push(r.join);
    if (r.perPoll) {
      out.perPoll = r.perPoll.requests;
      out.perPollByCommand = r.perPoll.byCommand;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Report

const spread = (values: readonly number[], digits = 2) => `${fmt(Math.min(...values), digits)} / ${fmt(median(values), digits)} / ${fmt(Math.max(...values), digits)}`;

function report(r: { counted: Counted[]; keepalive: Keepalives; group: Detection[]; reaper: Detection[]; watch: WatchLatency; sequential: Throughput; concurrent: Throughput; rebalance: Rebalancing }, tookSeconds: number): string {
  const reaperLimit = 1 + POLL_MS / TTL_MS;
  const groupLimit = 1 + (2 * POLL_MS) / TTL_MS;
  const signalFirst = [...r.group, ...r.reaper].filter((d) => d.signalFirst).length;
  const joinTimes = r.rebalance.join.flatMap((j) => (j.ms === undefined ? [] : [j.ms]));
  const rebalanced = r.group.flatMap((d) => (d.rebalanced === undefined ? [] : [d.rebalanced]));
  const deterministic = [
    "| operation | requests | by command | expected (from the code) |",
    "| --- | --- | --- | --- |",
    `| keepalive, per session per ttl (${KEEPALIVE_SESSIONS} sessions, ${KEEPALIVE_PERIODS} ttls of ${TTL_MS} ms) | ${fmt(r.keepalive.perSessionPerTtl)} | UpdateItem only (${r.keepalive.other} other requests, ${r.keepalive.lost} sessions lost) | 3: one per ttl/3, timed from each answer, so a little under 3 |`,
    ...r.counted.map((c) => `| ${c.label} | ${fmt(c.perOperation)} | ${c.byCommand} | ${c.expected} |`),
    `| group.assignments, one poll of a settled member (failure detection on) | ${fmt(r.rebalance.perPoll)} | ${r.rebalance.perPollByCommand} | 4: sessions (detection), head, members, head again |`,
  ];
  const measured = [
    "| measure | min / median / max | limit |",
    "| --- | --- | --- |",
    `| failure detection, group.assignments (${DETECTION_MEMBERS} members, poll ${POLL_MS} ms): kill → expiry, in ttls | ${spread(r.group.map((d) => d.fromKill))} | from ${fmt(2 / 3)} (killed just after a keepalive) to ${fmt(groupLimit)} |`,
    `|   last keepalive sent → expiry, in ttls | ${spread(r.group.map((d) => d.fromKeepalive))} | at least 1.00 (safety), at most about ${fmt(groupLimit)}: ttl + two polls (one to first see the last version, one after it falls due) |`,
    `|   kill → survivors own every partition, in ttls | ${rebalanced.length > 0 ? spread(rebalanced) : "-"} (${rebalanced.length} of ${r.group.length} kills) | expiry + the grants, in the same poll |`,
    `|   kills during which a surviving member's assignments failed | ${r.group.filter((d) => d.survivorFailure !== undefined).length} of ${r.group.length} | 0 |`,
    `| failure detection, SessionReaper (poll ${POLL_MS} ms): kill → expiry, in ttls | ${spread(r.reaper.map((d) => d.fromKill))} | from ${fmt(2 / 3)} to ${fmt(reaperLimit)} |`,
    `|   last keepalive sent → expiry, in ttls | ${spread(r.reaper.map((d) => d.fromKeepalive))} | at least 1.00 (safety), at most about ${fmt(reaperLimit)}: ttl + one poll (it wakes when a session falls due) |`,
    `| the killed owner's signal aborted before the expiry was written | ${signalFirst} of ${r.group.length + r.reaper.length} | all |`,
    `| leave (${MEMBERS} → ${MEMBERS - 1} members, ${PARTITIONS} partitions): time to settle, ms (views agree after ${spread(r.rebalance.leave.map((j) => j.viewMs), 0)}) | ${spread(r.rebalance.leave.map((j) => j.ms!), 0)} | one poll (${POLL_MS} ms) after the close, plus the grants: the poll that sees the leave takes the partitions |`,
    `|   partitions moved (the leaver's share) | ${spread(r.rebalance.leave.map((j) => j.moved), 0)} (${r.rebalance.leave.map((j) => j.predicted).join(", ")}) | N/members = ${fmt(PARTITIONS / MEMBERS, 1)} |`,
    `| join (${MEMBERS - 1} → ${MEMBERS} members): every member's assignment on the new view, ms | ${spread(r.rebalance.join.map((j) => j.viewMs), 0)} | one poll (${POLL_MS} ms) after the join |`,
    `|   time to settle, ms | ${joinTimes.length > 0 ? spread(joinTimes, 0) : "-"}; settled in ${joinTimes.length} of ${r.rebalance.join.length} rounds within ${JOIN_WAIT_MS} ms | about two polls (${2 * POLL_MS} ms): owners release, the joiner takes |`,
    `|   partitions reassigned (the joiner's rendezvous share) | ${spread(r.rebalance.join.map((j) => j.moved), 0)} (${r.rebalance.join.map((j) => j.predicted).join(", ")}) | N/members = ${fmt(PARTITIONS / MEMBERS, 1)} |`,
    `|   partitions still not handed over at the end of the wait | ${r.rebalance.join.map((j) => j.stuck).join(", ")} | 0 |`,
  ].join("\n");
  const rates = [
    "| measure | value | note |",
    "| --- | --- | --- |",
    `| watch latency p50 / p99 (ms), put resolved → watcher has it, poll ${WATCH_POLL_MS} ms, ${EVENTS} changes | ${fmt(r.watch.p50, 1)} / ${fmt(r.watch.p99, 1)} | min ${fmt(r.watch.min, 1)}${r.watch.min < 0 ? " (the watcher had it before the writer's answer arrived)" : ""}, max ${fmt(r.watch.max, 1)}; limit about one poll + one read |`,
    ...[r.sequential, r.concurrent].map(
      (t) =>
        `| changes/s on one namespace, ${t.writers === 1 ? "one writer, sequential" : `${t.writers} concurrent writers`} | ${fmt(t.perSecond, 0)} | ${fmt(t.requestsPerChange)} requests per change (${t.byCommand}); ${fmt(t.refusedPerChange)} commits refused per change; revisions ${t.gapFree ? "gap-free" : "NOT gap-free"} |`,
    ),
  ].join("\n");
  return [
    "## Coordination service",
    "",
    `Command: \`npm run bench:coordination${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}\` (ttl ${TTL_MS} ms, assignment and reaper poll ${POLL_MS} ms, watch poll ${WATCH_POLL_MS} ms, ${SECONDS} s throughput phases, ${REPEATS} kills per method, ${EVENTS} watched changes, ${MEMBERS} members, ${PARTITIONS} partitions; took ${fmt(tookSeconds, 0)} s).`,
    `Run: ${new Date().toISOString().slice(0, 16)}Z on ${cpus().length} cores (${cpus()[0]?.model ?? "unknown CPU"}), Node ${process.version}, DynamoDB Local 3.x (in-memory). The machine was shared with other engineers' test runs while this ran: latencies, times and rates were taken on a loaded machine; request counts are exact.`,
    "",
    "No peer is measured beside it: no npm package gives sessions, watches or agreed membership on DynamoDB (`dynamodb-lock-client`, the peer of the Locks section, does locks only), so these are absolute figures set against their theoretical limits.",
    "",
    "Requests per operation (counted by SDK middleware inside the retry loop; steady state: the client has read the namespace's head once):",
    "",
    ...deterministic,
    "",
    "Failure detection and rebalancing (a kill cuts the member's SDK client: every request lost; times of the expiry from the change log's commit stamp; ttl multiples):",
    "",
    measured,
    "",
    "Watches and throughput:",
    "",
    rates,
    "",
    "Reading it: every change is one TransactWriteItems conditioned on the namespace's head, so a namespace is one hot item: concurrent",
    "writers refuse each other's commits (the refused commits per change) and one namespace's throughput does not grow with writers. On AWS",
    "the head item caps a namespace at about 1,000 changes/s; DynamoDB Local's rates are not AWS rates. A session costs one UpdateItem per",
    "ttl/3 whatever it holds. An observer expires a session only after seeing the same version for a full ttl on its own clock, counted from",
    "the read that first showed it, so detection is never earlier than ttl after the last keepalive was sent; a SessionReaper wakes when a",
    "session falls due (at most one poll late), a member running group.assignments looks only on its poll (up to two polls late). Counted",
    "from the kill it is up to ttl/3 shorter: the last keepalive went out that much before. Rebalancing reassigns only the partitions whose",
    "rendezvous owner changed.",
    ...notes(r),
    "",
  ].join("\n");
}

/** What this run showed that the library's documentation does not lead one to expect. */
function notes(r: { counted: Counted[]; group: Detection[]; rebalance: Rebalancing }): string[] {
  const out: string[] = [];
  const idlePoll = r.counted.find((c) => c.label === "watch, one idle poll");
  if (idlePoll && idlePoll.perOperation > 1.1) {
    out.push(
      `- An idle watch costs ${fmt(idlePoll.perOperation)} requests per poll, not the one read watch.ts states: when the change log has nothing at the next revision it also reads the head, to tell "nothing yet" from "compacted".`,
    );
  }
  const failures = r.group.flatMap((d) => (d.survivorFailure === undefined ? [] : [d.survivorFailure]));
  if (failures.length > 0) {
    out.push(
      `- In ${failures.length} of ${r.group.length} kills a surviving member's group.assignments failed (${[...new Set(failures)].join("; ")}): two survivors raced to expire the victim; the loser read the session item (live, with the member key) before the winner's commit and the key after it, found no key left to delete, and sent a session-ending commit without key operations, whose update names #keys without using it (lib/coordination/store.ts, #sessionWrite's ExpressionAttributeNames). The same request ends the close of any session that never bound a key, and a SessionReaper pass that finds one due.`,
    );
  }
  const stuck = r.rebalance.join.filter((j) => j.stuck > 0).length;
  if (stuck > 0) {
    out.push(
      `- Joins did not settle in ${stuck} of ${r.rebalance.join.length} rounds: the assignments reassigned the joiner's rendezvous share at once, but the members that had to hand partitions over never released them. group.assignments releases a partition it gives up with the fencing token of the assignment it has just yielded, which no longer lists that partition (lib/coordination/assignment.ts, \`tokenOf(last!, p) ?? 0\`), so the release's condition (owner and token) fails, the failure is swallowed, and the grant stays with the old owner until its session ends. The leave and failure figures are unaffected: a stopped member releases with the tokens it holds, and an expired member's grants pass by its session's end.`,
    );
  }
  return out.length > 0 ? ["", "Found by this run:", "", ...out] : [];
}

await withLocalCloud(async (cloud) => {
  const started = performance.now();
  process.stderr.write("requests per operation...\n");
  const counted = await requestsPerOperation(cloud);
  process.stderr.write(`keepalives (${KEEPALIVE_PERIODS} ttls of ${TTL_MS} ms)...\n`);
  const keepalive = await keepalives(cloud);
  process.stderr.write(`failure detection (${REPEATS} kills each)...\n`);
  const group: Detection[] = [];
  const reaper: Detection[] = [];
  for (let i = 0; i < REPEATS; i++) {
    group.push(await detectionInGroup(cloud));
    reaper.push(await detectionByReaper(cloud));
  }
  process.stderr.write(`watch latency (${EVENTS} changes)...\n`);
  const watch = await watchLatency(cloud);
  process.stderr.write(`changes per second (${SECONDS} s phases)...\n`);
  await changesPerSecond(cloud, 1); // warm-up of DynamoDB Local's JIT
  const sequential = await changesPerSecond(cloud, 1);
  const concurrent = await changesPerSecond(cloud, WRITERS);
  process.stderr.write("rebalancing...\n");
  const rebalance = await rebalancing(cloud);
  const section = report({ counted, keepalive, group, reaper, watch, sequential, concurrent, rebalance }, (performance.now() - started) / 1000);
  publishSection("Coordination service", section, { write: !QUICK && !args["no-write"] });
});
