/**
 * `fencepost lock acquire|release|break|inspect|list`: operators' view of the lock service, in
 * remote mode (through the lock function), so it needs only lambda:InvokeFunction.
 */
import { hostname } from "node:os";
import { FencepostError, LockClient, LockTimeoutError, type LockPage, type LockState } from "../lib/index.js";
import { lockService, untilInterrupted } from "./connection.js";

export interface LockFlags {
  json: boolean;
  endpoint?: string;
  function?: string;
  owner?: string;
  token?: string;
  wait?: string;
  lease?: string;
  hold: boolean;
  limit?: string;
}

export class LockUsageError extends Error {}

const DEFAULT_OWNER = `cli@${hostname()}`;

function number(flag: string, value: string | undefined, fallback: number, scale = 1): number {
  if (value === undefined) return fallback * scale;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new LockUsageError(`${flag} must be a non-negative number, got '${value}'`);
  return n * scale;
}

function describeState(name: string, s: LockState | undefined): string {
  if (!s) return `'${name}' has never been used (no item).`;
  return s.released
    ? `'${name}' is free. Last fencing token ${s.fencingToken}; ${s.waiters} waiting.`
    : `'${name}' is held by '${s.holder}' with fencing token ${s.fencingToken} (lease ${s.leaseMs} ms; ${leaseLeft(s.expiresAt)})${s.data ? `, data '${s.data}'` : ""}; ${s.waiters} waiting.`;
}

/** The time left on a lease, or how long ago it ran out (wall clock, an estimate). */
function leaseLeft(expiresAt: number | undefined): string {
  if (expiresAt === undefined) return "expiry unknown";
  const ms = expiresAt - Date.now();
  const span = (x: number) => (x < 120_000 ? `${(x / 1000).toFixed(1)} s` : x < 7_200_000 ? `${Math.round(x / 60_000)} min` : `${Math.round(x / 3_600_000)} h`);
  return ms >= 0 ? `${span(ms)} left, until ${new Date(expiresAt).toISOString()}` : `EXPIRED ${span(-ms)} ago at ${new Date(expiresAt).toISOString()}; the next acquire takes it over`;
}

export async function lockCommand(sub: string | undefined, name: string | undefined, flags: LockFlags, out: (line: string) => void, progress: (line: string) => void): Promise<number> {
  const service = lockService(flags);
  const owner = flags.owner ?? DEFAULT_OWNER;
  const needName = () => {
    if (!name) throw new LockUsageError(`fencepost lock ${sub} needs a lock name`);
    return name;
  };
  switch (sub) {
    case "acquire": {
      const lockName = needName();
      const leaseMs = number("--lease", flags.lease, 60, 1000);
      const waitMs = number("--wait", flags.wait, 10, 1000);
      const client = new LockClient({ functionName: service.functionName, lambda: service.lambda, ownerId: owner, leaseMs });
      progress(`Acquiring '${lockName}' as '${owner}' (${service.where})...`);
      const lock = await client.acquire(lockName, { waitMs }).catch((err: unknown) => {
        if (!(err instanceof LockTimeoutError)) throw err;
        // The library's advice names its options; at the command line they are flags and commands.
        const said = err.message.replace(/: raise waitMs, or check the holder with inspect\('.*'\)\.$/s, "");
        throw Object.assign(new FencepostError(`${said}: try a longer --wait, or see who holds it with: fencepost lock inspect ${lockName}`), { name: "LockTimeoutError" });
      });
      // `heartbeating`: whether this command keeps the lease alive (--hold) or leaves it to run out.
      if (flags.json) out(JSON.stringify({ name: lockName, fencingToken: lock.fencingToken, owner, leaseMs, heartbeating: flags.hold }));
      else {
        out(`Acquired '${lockName}': fencing token ${lock.fencingToken}, owner '${owner}'.`);
        if (!flags.hold) out(`The lease (${leaseMs / 1000} s) is not renewed after this command exits. Release it with: fencepost lock release ${lockName} --token ${lock.fencingToken}${flags.owner ? ` --owner ${owner}` : ""}`);
      }
      if (!flags.hold) {
        lock.detach();
        return 0;
      }
      if (!flags.json) out("Holding (heartbeats every lease/3); Ctrl-C releases it.");
      await untilInterrupted(lock.signal);
      const lost = lock.signal.aborted;
      await lock.release();
      if (!flags.json) out(lost ? `Lost '${lockName}': ${(lock.signal.reason as Error).message}` : `Released '${lockName}'.`);
      return lost ? 1 : 0;
    }
    case "release": {
      const lockName = needName();
      if (flags.token === undefined) throw new LockUsageError("fencepost lock release needs --token (the fencing token acquire printed)");
      const token = number("--token", flags.token, 0);
      await new LockClient({ functionName: service.functionName, lambda: service.lambda, ownerId: owner }).release(lockName, token);
      out(flags.json ? JSON.stringify({ name: lockName, released: true }) : `Released '${lockName}' (token ${token}).`);
      return 0;
    }
    case "break": {
      // An operator's release on behalf of a holder that is stuck or gone: the grant named by
      // its token, whoever holds it (a newer grant is never broken by an old token).
      const lockName = needName();
      if (flags.token === undefined) throw new LockUsageError(`fencepost lock break needs --token (the holder's fencing token, as fencepost lock inspect ${lockName} shows it)`);
      const token = number("--token", flags.token, 0);
      const state = await new LockClient({ functionName: service.functionName, lambda: service.lambda }).inspect(lockName);
      if (!state || state.released || state.holder === undefined || state.fencingToken !== token) {
        const now = state && !state.released ? `held with fencing token ${state.fencingToken}` : "not held";
        throw Object.assign(new FencepostError(`'${lockName}' is ${now}: nothing broken. Check with: fencepost lock inspect ${lockName}`), { name: "LockNotBroken" });
      }
      await new LockClient({ functionName: service.functionName, lambda: service.lambda, ownerId: state.holder }).release(lockName, token);
      if (flags.json) out(JSON.stringify({ name: lockName, broken: true, holder: state.holder, fencingToken: token }));
      else {
        out(`Broke '${lockName}': released fencing token ${token} of '${state.holder}'; the next waiter gets a higher token.`);
        out(`'${state.holder}' learns it at its next heartbeat (LockLostError); until then only fencing tokens stop its writes.`);
      }
      return 0;
    }
    case "inspect": {
      const lockName = needName();
      const state = await new LockClient({ functionName: service.functionName, lambda: service.lambda }).inspect(lockName);
      out(flags.json ? JSON.stringify(state ?? null) : describeState(lockName, state));
      return 0;
    }
    case "list": {
      const client = new LockClient({ functionName: service.functionName, lambda: service.lambda });
      const limit = number("--limit", flags.limit, 100);
      if (!(Number.isInteger(limit) && limit > 0)) throw new LockUsageError(`--limit must be a positive integer, got '${flags.limit}'`);
      const locks: LockPage["locks"] = [];
      let startAfter: string | undefined;
      let pages = 0;
      do {
        const page = await client.list({ limit: Math.min(1000, Math.max(1, limit)), ...(startAfter ? { startAfter } : {}) });
        locks.push(...page.locks);
        startAfter = page.next;
        progress(`Scanning the lock table: page ${++pages}, ${locks.length} locks so far...`);
      } while (startAfter && locks.length < limit);
      const shown = locks.slice(0, limit);
      if (flags.json) out(JSON.stringify(shown));
      else if (shown.length === 0) out("No locks.");
      else {
        const rows = shown.map((l) => [l.name, l.released ? "free" : "held", l.holder ?? "-", String(l.fencingToken), String(l.waiters)]);
        const all = [["NAME", "STATE", "HOLDER", "TOKEN", "WAITING"], ...rows];
        const widths = all[0]!.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
        for (const r of all) out(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
      }
      return 0;
    }
    default:
      throw new LockUsageError(`unknown lock command '${sub ?? ""}': use acquire, release, break, inspect or list`);
  }
}
