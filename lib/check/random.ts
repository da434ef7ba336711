/**
 * A seeded pseudo-random source (SplitMix32), so that a verification run's choices of
 * faults, pauses and operations can be replayed from its seed.
 * (Guarantees and assumptions: see the TSDoc of Random below.)
 */
import { InvalidArgumentError } from "../errors.js";

/**
 * A seeded pseudo-random source (SplitMix32), so that a verification run's choices of
 * faults, pauses and operations can be replayed from its seed.
 *
 * Guarantees: the same seed yields the same sequence; `fork(label)` derives an
 * independent stream, so each worker's choices depend only on the seed and its own label,
 * not on how the workers interleave.
 * Not for cryptography.
 */
export class Random {
  #state: number;

  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x9e3779b9) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new InvalidArgumentError("items", "must not be empty: there is nothing to pick");
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** An independent stream named `label`, determined by this stream's seed alone. */
  fork(label: string): Random {
    let h = this.seed ^ 0x811c9dc5;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
    return new Random(h >>> 0);
  }
}
