/**
 * When a waiter looks at the lock item again. Only performance depends on this module:
 * every decision it informs is re-checked by a conditional write (see lease.ts), so a
 * wrong guess costs a request or some latency, never safety.
 *
 * A release hands the lock to the head waiter in its own write, so a waiter has nothing
 * to watch for but its own turn. It predicts it from when the current grant began
 * (`grantedAt`: the item's `acquiredAt`, the granting writer's wall clock) and what each
 * grant after it takes at best: the holders' hint in the item (`holdMs`, durations each
 * holder measured on its own clock), the next holder's look at its handover (half a round
 * trip after the handover lands, when it too looks on time) and the release's trip (half
 * a round trip). It sends its look to land just after its own handover would. Aimed at
 * what the holds and the round trips need, on purpose: a pace measured from waiters' own
 * looks is self-consistent at any lateness (the lock idles until the next waiter looks,
 * and the next waiter learns to look that late), and so is any correction learned from
 * it. A look that comes early costs a read, and the next one is aimed from the item it
 * returns (bench/locks.ts measures the trade: about one early read per contended grant,
 * for grants half again as frequent as with a measured pace). With no start known, the
 * time per grant this client measured while waiting (`cycleMs`), capped by the hint plus
 * two round trips, predicts from the anchor instead. Past the turn, looks back off
 * (doubling from half a round trip, at least an eighth of the current grant's age, at
 * most `maxPollMs` apart).
 *
 * A holder that stops writing is presumed gone: a live holder changes the version at
 * least every third of its lease (heartbeats), and a waiter handed the lock takes it up
 * within half its place's lease. Once the version has been silent for that long plus a
 * slack, the waiter stops polling and waits for the lease to run out on its own clock
 * (the takeover rule), so a crashed holder costs its successor one look, not a poll
 * every `maxPollMs`. A presumed-gone holder that is merely slow is noticed at the next
 * renewal of the waiter's place or at the lease's end, when the takeover write is refused
 * with the item.
 *
 * A waiter never sleeps longer than a handover to it would last, less a slack (`handoffMs`):
 * a holder presumed gone may be merely slow and release any moment, handing the lock to
 * the head, whose handover the next waiter takes over after that lease. So a crashed
 * holder costs its successor one look per such lease of its sleep (one, when the holder's
 * lease is not much longer than the waiter's handover lease, as with the defaults' ratio
 * in the benchmark), not one every `maxPollMs`.
 *
 * With no pace known at all (a new lock item, never released), the first look is at
 * the first heartbeat's due time plus slack, or BLIND_FIRST_LOOK_MS, whichever is sooner.
 *
 * Clocks: every time here is on the waiter's own monotonic clock. The hint `holdMs` is a
 * duration another client measured on its own clock; it is compared with nothing.
 * `grantedAt` is another client's wall-clock time moved onto this clock: a skew between
 * their wall clocks makes looks that much early (a request) or late (idle time), no more.
 */
import { HEARTBEAT_FRACTION } from "./defaults.js";

/** The first look of a waiter that knows nothing of the lock's pace comes no later than this (ms). */
export const BLIND_FIRST_LOOK_MS = 500;
/** A measured time per grant is used up to this multiple of the holders' hint plus two round trips. */
const MAX_PACE_OVER_MODEL = 2.5;
/** A turn is predicted at this share of the time per grant (see nextLook). */
const AIM = 0.95;
/** Smallest slack past a holder's promised write before it is presumed gone (ms); a tenth of the lease when larger. */
const MIN_SILENCE_SLACK_MS = 50;

export interface PaceInput {
  /** Now, on the waiter's clock. */
  readonly now: number;
  /** The lock's state as last seen. */
  readonly holder: string | undefined;
  /** A release handed the lock to a waiter that has not taken it up yet (or holds it without having written). */
  readonly pending: boolean;
  /** The item's lease: the holder's, or a pending handover's. */
  readonly leaseMs: number;
  /** The holders' hint (ms), if the item has one. */
  readonly holdMs: number | undefined;
  /** The current token. */
  readonly token: number;
  /** Live places ahead of this waiter's (0: it is next). */
  readonly ahead: number;
  /** When (waiter's clock) the current version was first seen. */
  readonly versionSince: number;
  /** When the current token was first seen. */
  readonly tokenSince: number;
  /** A token this waiter saw handed over, and when (its own release's answer, or the first answer of its wait). */
  readonly anchor: { readonly token: number; readonly at: number };
  /** Time per grant this client measured on this lock over its earlier waits, if any. */
  readonly cycleMs: number | undefined;
  /** This client's round trip to DynamoDB (ms). */
  readonly rttMs: number;
  /**
   * When the current token was granted (or handed over), on this waiter's clock, if the
   * item says (its `acquiredAt`, moved from the writer's wall clock); never after `tokenSince`.
   */
  readonly grantedAt?: number | undefined;
  /** Looks since the lock's state (token, handed over or taken up) last changed. */
  readonly overdue: number;
  readonly minPollMs: number;
  readonly maxPollMs: number;
  /**
   * The lease of a handover to this waiter (queue.ts handoffLeaseMs of its place): it never
   * sleeps past that, less a slack, since the lock may be handed to it any moment. Omitted:
   * no bound.
   */
  readonly handoffMs?: number | undefined;
}

/** `look`: a request (a read, or an accept attempt whose refusal returns the item). `expiry`: the head's takeover write falls due. */
export interface PacePlan {
  readonly at: number;
  readonly reason: "look" | "expiry";
}

/**
 * The next look. The waiter's turn is the token after those of the places ahead; it is
 * predicted from the anchor (a handover this waiter saw, and when) at the measured time per
 * grant, or, with no measure yet, at the holders' hint plus two round trips (a release and
 * a look). Past the prediction, looks back off (doubling from half a round trip, at least a
 * quarter of the current grant's age, at most maxPollMs apart).
 */
export function nextLook(input: PaceInput): PacePlan {
  const plan = plannedLook(input);
  if (input.handoffMs === undefined) return plan;
  // A handover to us lasts handoffMs from the release, and the release may come during any
  // sleep (a slow holder presumed gone too): look (then accept) before the next waiter may
  // take it over, with slack for a read, an accept and clock rates. This bound goes before
  // minPollMs: a waiter told to look rarely must still not lose a turn handed to it.
  const slack = Math.max(MIN_SILENCE_SLACK_MS, input.handoffMs / 10) + 2 * input.rttMs;
  const latest = input.now + Math.max(1, input.handoffMs - slack);
  return plan.at > latest ? { at: latest, reason: "look" } : plan;
}

function plannedLook(input: PaceInput): PacePlan {
  const { now, leaseMs, ahead, rttMs, minPollMs, maxPollMs } = input;
  // A measured pace beyond what the holds and the round trips explain is waiters' lateness
  // (a load spike, a late look): it is not repeated on purpose.
  const model = input.holdMs !== undefined ? input.holdMs + 2 * rttMs : undefined;
  const cycle = model === undefined ? input.cycleMs : Math.min(input.cycleMs ?? model, model * MAX_PACE_OVER_MODEL);
  const backoff = () => now + clamp(Math.max(Math.max(minPollMs, rttMs / 2) * 2 ** Math.max(0, input.overdue - 1), (now - input.tokenSince) / 8), minPollMs, maxPollMs);
  if (input.holder === undefined) {
    // Free, with live places ahead: the head takes it (or is judged gone). Look after it.
    return { at: Math.min(now + maxPollMs, Math.max(now + ahead * (cycle ?? 0), backoff())), reason: "look" };
  }
  const promise = input.pending ? leaseMs / 2 : leaseMs * HEARTBEAT_FRACTION;
  const slack = Math.max(MIN_SILENCE_SLACK_MS, leaseMs / 10) + rttMs;
  const silentUntil = input.versionSince + promise + slack;
  if (now >= silentUntil && ahead === 0 && !input.pending) {
    // Presumed gone: its grant ends with its lease, when we, at the head, may take over. (A
    // waiter further back gains nothing by presuming: it keeps looking, at most maxPollMs
    // apart; so does the head behind a handover not yet taken up, which may be handed on to
    // it any moment.)
    return { at: input.versionSince + leaseMs, reason: "expiry" };
  }
  if (now >= silentUntil) return { at: Math.max(now + minPollMs, backoff()), reason: "look" };
  const turn = predictedTurn(input, cycle);
  if (turn === undefined) {
    if (input.overdue === 0) {
      // Blind: one look when the first heartbeat is due (or BLIND_FIRST_LOOK_MS), even past
      // maxPollMs: a single look then tells a crashed holder from a live one.
      return { at: Math.max(now + minPollMs, Math.min(silentUntil, input.tokenSince + BLIND_FIRST_LOOK_MS)), reason: "look" };
    }
    return { at: Math.max(now + minPollMs, Math.min(backoff(), Math.max(silentUntil, now + minPollMs))), reason: "look" };
  }
  // Past the predicted turn: back off. Never past the moment the holder would be presumed gone
  // (one look then settles it), nor more than maxPollMs while it is alive.
  const at = turn <= now || input.overdue > 0 ? Math.max(turn, backoff()) : turn;
  return { at: Math.max(now + minPollMs, Math.min(at, now + maxPollMs, Math.max(silentUntil, now + minPollMs))), reason: "look" };
}

/** When this waiter's turn should come, from the current grant's start, or else from the anchor at the measured pace; undefined when neither is known. */
function predictedTurn(input: PaceInput, cycle: number | undefined): number | undefined {
  const { ahead, rttMs } = input;
  if (input.grantedAt !== undefined && input.holdMs !== undefined) {
    // From one handover write's send to the next, when every waiter looks on time: the
    // write's trip (half a round trip), the next holder's look landing half a round trip
    // after it and its answer's trip back (one round trip), and the hold. Our look is sent
    // half a round trip after our own handover would be, to land just after it.
    return input.grantedAt + (ahead + 1) * (input.holdMs + 2 * rttMs) + rttMs / 2;
  }
  if (cycle === undefined) return undefined;
  // Aimed a little early: any time per grant is self-consistent if every waiter looks that
  // late (the lock idles until it does), so only looks that sometimes come early, and then
  // look again soon, let the measure shrink to what the holders and the round trips need.
  return input.anchor.at + (input.token + ahead + 1 - input.anchor.token) * cycle * AIM;
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}
