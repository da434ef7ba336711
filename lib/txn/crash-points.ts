/**
 * Crash points: the named places where verification makes a coordinator "die" (a test
 * seam of the harness in lib/check, set through CoordinatorHooks; never in production).
 *
 * Guarantees: `crashPoints(b)` lists every point of a protocol run over b branches, in the
 * order the coordinator passes them; a seam that answers true at a point stops the
 * coordinator there with CoordinatorCrashedError, before the step's request is sent.
 * Assumes: nothing; a coordinator without a seam never stops.
 */
import { CoordinatorCrashedError } from "../errors.js";

/** Where a coordinator can be made to "die" in tests: before a step, or before message i of a phase. */
export type CrashPoint = "begin" | `prepare:${number}` | "decide" | `phase2:${number}` | "complete";

/** Answers true to make the coordinator stop dead at `point` of transaction `txId`. */
export type CrashSeam = (point: CrashPoint, txId: string) => boolean;

/** Every crash point of a transaction over `participants` branches, in protocol order. */
export function crashPoints(participants: number): CrashPoint[] {
  const each = (phase: "prepare" | "phase2") => Array.from({ length: participants + 1 }, (_, i) => `${phase}:${i}` as CrashPoint);
  return ["begin", ...each("prepare"), "decide", ...each("phase2"), "complete"];
}

/** Throws CoordinatorCrashedError if `seam` asks the coordinator to die at `point`. */
export function crashIfAsked(seam: CrashSeam | undefined, point: CrashPoint, txId: string): void {
  if (seam?.(point, txId)) throw new CoordinatorCrashedError(txId, point);
}
