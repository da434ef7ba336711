/**
 * A group member of the coordination workload in a process of its own, so that
 * verification can kill it with SIGKILL at any moment (mid-grant, mid-write, between a
 * keepalive's send and its answer), not only at the moments the workload chooses.
 *
 * argv[2] is its configuration (MemberProcessConfig, JSON). Every line it writes is one
 * JSON message with `at`, a time on the clock all processes of the machine share
 * (performance.timeOrigin + performance.now()), and its fault counts so far:
 * `{ ready }`, then `{ session }` once its session is open, `{ ephemeral }` once its
 * ephemeral key is written, `{ assignment }` for every assignment it receives, `{ lost }`
 * when its session's signal aborts, `{ ended }` if its assignments end, and `{ write, result }`
 * for each write it was asked for. It reads writes from stdin, one JSON line each
 * (`{ write, partition, token, value }`), and makes them (fenced with the token) only if it
 * believes it owns the partition with that token: its session live and its latest
 * assignment listing it; otherwise it answers `not-owner` and writes nothing.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { createInterface } from "node:readline";
import { Coordination } from "../../coordination/coordination.js";
import { StaleTokenError } from "../../errors.js";
import { FencedStore } from "../../locks/fencing.js";
import { emptyFaultCounts, FaultSchedule } from "../faults.js";
import { Random } from "../random.js";
import { coordinationHooks, type MemberProcessConfig, type MemberMessage } from "./coordination.js";

const config = JSON.parse(process.argv[2] ?? "{}") as MemberProcessConfig;
const db = new DynamoDBClient(config.dynamodb);
const counts = emptyFaultCounts();
new FaultSchedule(new Random(config.seed), counts, config.faults).attach(db);
const at = () => performance.timeOrigin + performance.now();
const say = (message: MemberMessage) => process.stdout.write(`${JSON.stringify({ ...message, faults: counts })}\n`);

const coord = new Coordination({ tableName: config.tableName, dynamodb: db, namespace: config.namespace, ownerId: config.ownerId }, coordinationHooks(config.control));
const store = new FencedStore<string>({ tableName: config.fencedTable, dynamodb: db, keyPrefix: config.keyPrefix });

// Warm up (connections, code paths) so that kills land in the member's life, not in a cold start.
await coord.revision().catch(() => undefined);
say({ ready: true, at: at() });
const session = await coord.openSession({ ttlMs: config.ttlMs }).catch(() => undefined);
if (!session) {
  say({ ended: "open-session failed", at: at() });
} else {
  say({ session: session.id, at: at() });
  session.signal.addEventListener("abort", () => say({ lost: true, at: at() }), { once: true });
  const key = `eph/${session.id}/0`;
  void coord.put(key, config.ownerId, { session }).then(
    () => say({ ephemeral: key, at: at() }),
    () => undefined,
  );
  let owned = new Map<number, number>();
  void (async () => {
    try {
      for await (const a of coord.group(config.group).assignments(session, { partitions: config.partitions, pollMs: config.pollMs, meta: { worker: config.ownerId } })) {
        owned = new Map(a.partitions.map((g) => [g.id, g.fencingToken]));
        say({ assignment: { epoch: a.epoch, members: a.members, partitions: a.partitions }, at: at() });
      }
      say({ ended: "assignments ended", at: at() });
    } catch (err) {
      owned = new Map();
      say({ ended: (err as Error).name, at: at() });
    }
  })();
  for await (const line of createInterface({ input: process.stdin })) {
    const w = JSON.parse(line) as { write: number; partition: number; token: number; value: string };
    if (!session.live || owned.get(w.partition) !== w.token) {
      say({ write: w.write, result: "not-owner", at: at() });
      continue;
    }
    void store.put(`p${w.partition}`, w.value, w.token).then(
      () => say({ write: w.write, result: "ok", at: at() }),
      (err: unknown) => say({ write: w.write, result: err instanceof StaleTokenError ? "stale" : "error", error: (err as Error).name, at: at() }),
    );
  }
}
