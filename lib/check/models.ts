/**
 * Sequential specifications for the linearizability checker: the fenced mutex, the
 * compare-and-set register and the counter. Each says what a correct single-copy object
 * would have answered; `step` returns no state when an answer is impossible.
 */
import type { Model } from "./linearizability.js";

/**
 * A lock with fencing tokens and the fenced store it guards, as one object per lock name.
 *
 * Operations:
 * - `acquire` → `{ token }`: legal only if the lock is free (released, or its holder's
 *   lease has ended) and `token` exceeds every token granted before. An acquire whose
 *   outcome is unknown may have granted a token nobody holds (an orphan that expires):
 *   it leaves the lock free and raises the token floor by at least one.
 * - `leaseEnd` `{ token }`: the instant the holder of `token` stopped believing it held the
 *   lock (recorded by the workload). Legal only if `token` still holds it then, which is
 *   the mutual-exclusion check: nobody was granted the lock while its holder believed it
 *   held it.
 * - `release` `{ token }` → `{ released }`: true only if `token` holds the lock, or held it
 *   last and nobody took over since; false only if it does not hold it.
 * - `write` `{ token, value }` → "ok" | "stale": ok only if no higher token wrote before.
 * - `read` → `{ token, value }` | null: the last accepted write.
 */
export interface MutexState {
  /** Token of the current holder; 0 when free. */
  readonly holder: number;
  /** The highest token granted (a lower bound when an unknown acquire may have granted one). */
  readonly maxToken: number;
  /** The highest token that wrote the store, and what it wrote. */
  readonly storeToken: number;
  readonly value: string | null;
}

export type MutexInput = { token?: number; value?: string };
export type MutexOutput = { token: number } | { released: boolean } | "ok" | "stale" | { token: number; value: string } | null;

export const fencedMutex: Model<MutexState, MutexInput, MutexOutput> = {
  name: "fenced mutex",
  init: () => ({ holder: 0, maxToken: 0, storeToken: 0, value: null }),
  hash: (s) => `${s.holder}/${s.maxToken}/${s.storeToken}/${s.value}`,
  step(s, op) {
    const out = op.output;
    const token = op.input.token ?? 0;
    switch (op.f) {
      case "acquire": {
        if (s.holder !== 0) return [];
        if (out === undefined) return [{ ...s, maxToken: s.maxToken + 1 }];
        const granted = (out as { token: number }).token;
        return granted > s.maxToken ? [{ ...s, holder: granted, maxToken: granted }] : [];
      }
      case "leaseEnd":
        return s.holder === token ? [{ ...s, holder: 0 }] : [];
      case "release": {
        const mayRelease = s.holder === token || (s.holder === 0 && s.maxToken === token);
        if (out === undefined) return mayRelease ? [{ ...s, holder: 0 }] : [];
        if ((out as { released: boolean }).released) return mayRelease ? [{ ...s, holder: 0 }] : [];
        return s.holder !== token ? [s] : [];
      }
      case "write": {
        const accepted = token >= s.storeToken;
        if (out === undefined) return accepted ? [{ ...s, storeToken: token, value: op.input.value ?? null }] : [];
        if (out === "ok") return accepted ? [{ ...s, storeToken: token, value: op.input.value ?? null }] : [];
        return accepted ? [] : [s];
      }
      case "read": {
        if (out === undefined) return [];
        const seen = out as { token: number; value: string } | null;
        return (seen === null ? s.storeToken === 0 : seen.token === s.storeToken && seen.value === s.value) ? [s] : [];
      }
      default:
        return [];
    }
  },
};

/**
 * A versioned compare-and-set register (see lib/locks/register.ts).
 * - `read` → `{ version, value }` (version 0, value null: never written).
 * - `cas` `{ expected, value }` → `{ ok: true }` if the version was `expected` (it becomes
 *   expected + 1), `{ ok: false, version }` with the version it found otherwise.
 */
export interface RegisterState {
  readonly version: number;
  readonly value: string | null;
}
export type RegisterInput = { expected?: number; value?: string };
export type RegisterOutput = { version: number; value: string | null } | { ok: true } | { ok: false; version: number };

export const casRegister: Model<RegisterState, RegisterInput, RegisterOutput> = {
  name: "CAS register",
  init: () => ({ version: 0, value: null }),
  hash: (s) => `${s.version}/${s.value}`,
  step(s, op) {
    const out = op.output;
    if (op.f === "read") {
      if (out === undefined) return [];
      const seen = out as { version: number; value: string | null };
      return seen.version === s.version && seen.value === s.value ? [s] : [];
    }
    if (op.f !== "cas") return [];
    const matches = s.version === op.input.expected;
    const next = { version: s.version + 1, value: op.input.value ?? null };
    if (out === undefined) return matches ? [next] : [];
    const result = out as { ok: boolean; version?: number };
    if (result.ok) return matches ? [next] : [];
    return !matches && result.version === s.version ? [s] : [];
  },
};

/**
 * An increment-and-get counter.
 * - `increment` `{ delta }` → the new value.
 * - `read` → the current value.
 */
export type CounterInput = { delta?: number };

export const counter: Model<number, CounterInput, number> = {
  name: "counter",
  init: () => 0,
  hash: (n) => String(n),
  step(n, op) {
    if (op.f === "read") return op.output === n ? [n] : [];
    if (op.f !== "increment") return [];
    const next = n + (op.input.delta ?? 1);
    return op.output === undefined || op.output === next ? [next] : [];
  },
};

/**
 * A key of the coordination service (lib/coordination): the CAS register above, with the
 * service's revisions and with puts and deletes. Values are unique per write (the workload
 * makes them so), so "the key's revision is r" is "the key holds the value written at r":
 * a compare-and-set names the value it expects along with the revision it read it at.
 * - `read` → `{ value, revision }` (value null, revision 0: the key does not exist).
 * - `put` `{ value }` → `{ revision }`: revisions of one key's writes increase.
 * - `cas` `{ expected, expectedRevision, value }` → `{ ok: true, revision }` if the key held
 *   `expected` (null: did not exist), `{ ok: false, value }` with the value it held otherwise.
 * - `delete` → `{ deleted: true, revision }` if the key existed (it no longer does),
 *   `{ deleted: false }` if it did not.
 * The state's revision is that of the key's last change (for a key that does not exist, of
 * its delete: later writes must be later still); undefined after a change whose answer was
 * lost (it landed at a revision nobody saw), until a read learns it.
 */
export interface KvState {
  readonly value: string | null;
  readonly revision: number | undefined;
}
export type KvInput = { value?: string; expected?: string | null; expectedRevision?: number };
export type KvOutput = { value: string | null; revision: number } | { revision: number } | { ok: true; revision: number } | { ok: false; value: string | null } | { deleted: boolean; revision?: number };

const laterRevision = (s: KvState, revision: number) => s.revision === undefined || revision > s.revision;

export const kvRegister: Model<KvState, KvInput, KvOutput> = {
  name: "key-value register",
  init: () => ({ value: null, revision: 0 }),
  hash: (s) => `${s.value}/${s.revision ?? "?"}`,
  step(s, op) {
    const out = op.output;
    switch (op.f) {
      case "read": {
        if (out === undefined) return [];
        const seen = out as { value: string | null; revision: number };
        if (seen.value !== s.value) return [];
        if (s.value === null) return seen.revision === 0 ? [s] : [];
        return s.revision === undefined || s.revision === seen.revision ? [{ value: s.value, revision: seen.revision }] : [];
      }
      case "put": {
        const value = op.input.value ?? null;
        if (out === undefined) return [{ value, revision: undefined }];
        const { revision } = out as { revision: number };
        return laterRevision(s, revision) ? [{ value, revision }] : [];
      }
      case "cas": {
        const matches = s.value === (op.input.expected ?? null);
        const value = op.input.value ?? null;
        if (out === undefined) return matches ? [{ value, revision: undefined }] : [];
        const result = out as { ok: boolean; revision?: number; value?: string | null };
        if (result.ok) return matches && laterRevision(s, result.revision ?? 0) ? [{ value, revision: result.revision }] : [];
        return !matches && (result.value ?? null) === s.value ? [s] : [];
      }
      case "delete": {
        if (out === undefined) return [s.value === null ? s : { value: null, revision: undefined }];
        const result = out as { deleted: boolean; revision?: number };
        if (!result.deleted) return s.value === null ? [s] : [];
        return s.value !== null && laterRevision(s, result.revision ?? 0) ? [{ value: null, revision: result.revision }] : [];
      }
      default:
        return [];
    }
  },
};
