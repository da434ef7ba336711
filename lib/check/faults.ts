/**
 * Faults for verification runs, on a seeded schedule so a failing run can be replayed:
 * (Guarantees and assumptions: see the TSDoc of FaultSchedule below.)
 */
import { injectFaults, type FaultKind, type RequestInfo } from "./middleware.js";
import type { MonotonicClock } from "../locks/clock.js";
import { Random } from "./random.js";

export const FAULT_KINDS: readonly FaultKind[] = ["lose-request", "lose-response", "throttle", "server-error", "delay", "late-delivery"];

export interface FaultRates {
  /** Probability that a request starts a fault. Default 0.08. */
  rate?: number;
  /** Longest burst of throttling or 5xx, in requests. Default 4. */
  maxBurst?: number;
  /** Longest extra delay of a slow response. Default 300 ms. */
  maxDelayMs?: number;
  /** Longest time a late-delivered request spends in the network. Default 1 500 ms. */
  maxLateMs?: number;
  /** Which faults to draw from. Default: all of FAULT_KINDS. */
  kinds?: readonly FaultKind[];
  /** Which requests may meet a fault. Default: every request. */
  requests?: (request: RequestInfo) => boolean;
}

/** Counts of injected faults by kind, plus pauses, duplicate runs of one operation id and real process kills. */
export type FaultCounts = Record<FaultKind | "pause" | "duplicate-run" | "sigkill", number>;

export function emptyFaultCounts(): FaultCounts {
  return { "lose-request": 0, "lose-response": 0, throttle: 0, "server-error": 0, delay: 0, "late-delivery": 0, pause: 0, "duplicate-run": 0, sigkill: 0 };
}

type Client = Parameters<typeof injectFaults>[0];

/**
 * Faults for verification runs, on a seeded schedule so a failing run can be replayed:
 *
 * - `FaultSchedule`: per SDK request, maybe a fault (lost request, lost response after the
 *   write applied, a burst of throttling or 5xx, a slow response, a request delivered
 *   late after the client gave up on it). Each worker has its own
 *   schedule forked from the run's seed, so its n-th request meets the same fault in every
 *   run with that seed (which request is n-th still depends on timing).
 * - `PauseGate`: a stop-the-world pause of one worker. While paused, nothing the worker
 *   sends reaches the service and nothing it receives is seen; the worker itself sleeps
 *   through the pause and then carries on with what it believed before it (a GC pause).
 * - `SkewedClock`: a worker's monotonic clock with an arbitrary origin and a rate off by
 *   a bounded drift.
 */
export class FaultSchedule {
  readonly #random: Random;
  readonly #rate: number;
  readonly #maxBurst: number;
  readonly #maxDelayMs: number;
  readonly #maxLateMs: number;
  readonly #counts: FaultCounts;
  readonly #late = new Set<Promise<void>>();
  readonly #kinds: readonly FaultKind[];
  readonly #requests: (request: RequestInfo) => boolean;
  #burst: { kind: FaultKind; left: number } | undefined;
  #enabled = true;

  constructor(random: Random, counts: FaultCounts, rates: FaultRates = {}) {
    this.#random = random;
    this.#counts = counts;
    this.#rate = rates.rate ?? 0.08;
    this.#maxBurst = rates.maxBurst ?? 4;
    this.#maxDelayMs = rates.maxDelayMs ?? 300;
    this.#maxLateMs = rates.maxLateMs ?? 1500;
    this.#kinds = rates.kinds ?? FAULT_KINDS;
    this.#requests = rates.requests ?? (() => true);
  }

  /** Stops injecting (for a workload's final reads). */
  disable(): void {
    this.#enabled = false;
  }

  /** Resolves once every late-delivered request has reached the service (or failed to). */
  async landed(): Promise<void> {
    while (this.#late.size > 0) await Promise.all([...this.#late]);
  }

  /** Adds this schedule's faults to `client`'s requests; returns the remover. */
  attach(client: Client): () => void {
    return injectFaults(
      client,
      (request) => (this.#requests(request) ? this.#next() : undefined),
      (kind) => this.#counts[kind]++,
      (delivery) => {
        this.#late.add(delivery);
        void delivery.then(() => this.#late.delete(delivery));
      },
    );
  }

  #next(): { kind: FaultKind; delayMs?: number } | undefined {
    if (!this.#enabled) return undefined;
    if (this.#burst && this.#burst.left > 0) {
      this.#burst.left--;
      return { kind: this.#burst.kind };
    }
    this.#burst = undefined;
    if (!this.#random.chance(this.#rate)) return undefined;
    const kind = this.#random.pick(this.#kinds);
    if (kind === "throttle" || kind === "server-error") this.#burst = { kind, left: this.#random.int(0, this.#maxBurst - 1) };
    if (kind === "late-delivery") return { kind, delayMs: this.#random.int(50, this.#maxLateMs) };
    return kind === "delay" ? { kind, delayMs: this.#random.int(20, this.#maxDelayMs) } : { kind };
  }
}

/** Stops one worker's world: its requests and responses wait while it is paused. */
export class PauseGate {
  #until = 0;
  readonly #counts: FaultCounts;

  constructor(counts: FaultCounts) {
    this.#counts = counts;
  }

  get paused(): boolean {
    return performance.now() < this.#until;
  }

  /** Pauses the worker for `ms` and resolves when the pause is over. */
  async pause(ms: number): Promise<void> {
    this.#counts.pause++;
    this.#until = Math.max(this.#until, performance.now() + ms);
    await this.wait();
  }

  /** Resolves once the worker is not paused. */
  async wait(): Promise<void> {
    while (this.paused) await new Promise((r) => setTimeout(r, this.#until - performance.now()));
  }

  /** Holds `client`'s requests and responses during pauses; returns the remover. */
  attach(client: Client): () => void {
    const name = `fencepostPause${Math.random().toString(36).slice(2)}`;
    client.middlewareStack.add(
      (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
        await this.wait();
        const result = await next(args);
        await this.wait();
        return result;
      },
      { step: "finalizeRequest", priority: "low", name },
    );
    return () => void client.middlewareStack.remove(name);
  }
}

/** A monotonic clock with an arbitrary origin and a rate of `1 + drift`. */
export class SkewedClock implements MonotonicClock {
  readonly origin: number;
  readonly rate: number;

  constructor(random: Random, maxDrift: number) {
    this.origin = random.int(-1e9, 1e9);
    this.rate = 1 + (random.next() * 2 - 1) * maxDrift;
  }

  now(): number {
    return this.origin + this.rate * performance.now();
  }

  /** Real milliseconds for `ms` of this clock. */
  toReal(ms: number): number {
    return ms / this.rate;
  }
}
