/**
 * The fencing tokens the console has seen per lock. The lock table keeps only a lock's
 * latest token (one item per lock), so a history can only be what an observer saw: this
 * records each new (token, holder) the console's reads come across, with when it was
 * first seen. Tokens granted and released between two reads are not seen.
 *
 * Guarantees: per lock, sightings are newest first, at most PER_LOCK of them, for at most
 * LOCKS locks (the least recently changed forgotten first); memory stays bounded.
 */
import type { LockState } from "../locks/protocol.js";

/** Sightings kept per lock. */
const PER_LOCK = 50;
/** Locks whose sightings are kept. */
const LOCKS = 10_000;

/** One token as the console first saw it. */
export interface TokenSighting {
  readonly fencingToken: number;
  /** Who held it when first seen (undefined: seen already released). */
  readonly holder: string | undefined;
  /** Epoch ms when this console first saw it. */
  readonly seenAt: number;
}

export class TokenHistory {
  readonly #locks = new Map<string, TokenSighting[]>();

  /** Records `state`'s token if it is new for `name`. */
  saw(name: string, state: Pick<LockState, "fencingToken" | "holder">): void {
    const sightings = this.#locks.get(name) ?? [];
    const last = sightings[0];
    if (last && last.fencingToken === state.fencingToken && (last.holder !== undefined || state.holder === undefined)) return;
    // A token first seen released, then seen held, is the same grant seen late: keep its holder.
    const entry = { fencingToken: state.fencingToken, holder: state.holder ?? last?.holder, seenAt: Date.now() };
    const kept = last && last.fencingToken === state.fencingToken ? [{ ...entry, seenAt: last.seenAt }, ...sightings.slice(1)] : [entry, ...sightings].slice(0, PER_LOCK);
    this.#locks.delete(name);
    this.#locks.set(name, kept);
    if (this.#locks.size > LOCKS) this.#locks.delete(this.#locks.keys().next().value!);
  }

  of(name: string): readonly TokenSighting[] {
    return this.#locks.get(name) ?? [];
  }
}
