/**
 * When a waiter looks again (pace.ts): a pure function of what it saw, on its own clock.
 * Its rules that the lock's request counts and the takeover bound rest on.
 */
import { expect, it } from "vitest";
import { nextLook, type PaceInput } from "../../lib/locks/pace.js";

const base: PaceInput = {
  now: 10_000,
  holder: "h",
  pending: false,
  leaseMs: 1000,
  holdMs: undefined,
  token: 7,
  ahead: 0,
  versionSince: 10_000,
  tokenSince: 10_000,
  anchor: { token: 7, at: 10_000 },
  cycleMs: undefined,
  rttMs: 4,
  overdue: 0,
  minPollMs: 2,
  maxPollMs: 250,
};

it("with no pace known, looks once when the holder's first heartbeat is due, even past maxPollMs", () => {
  const plan = nextLook(base);
  // A third of the lease, plus a tenth of it and a round trip of slack.
  expect(plan).toEqual({ at: 10_000 + 1000 / 3 + 100 + 4, reason: "look" });
  expect(nextLook({ ...base, leaseMs: 60_000, versionSince: 10_000 }).at).toBe(10_500); // at most 500 ms
});

it("takes over at the end of the lease, without looking, once the holder missed its heartbeat", () => {
  expect(nextLook({ ...base, now: 10_440, overdue: 1 })).toEqual({ at: 11_000, reason: "expiry" });
});

it("never presumes a handover not yet taken up gone, and keeps looking behind it at most maxPollMs apart", () => {
  const plan = nextLook({ ...base, pending: true, now: 10_700, holdMs: 5, overdue: 3 });
  expect(plan.reason).toBe("look");
  expect(plan.at - 10_700).toBeLessThanOrEqual(250);
});

it("predicts the turn from the anchor at the measured pace, a little early, and backs off past it", () => {
  const anchored = { ...base, holdMs: 5, cycleMs: 12, ahead: 2, anchor: { token: 7, at: 10_000 } };
  expect(nextLook(anchored).at).toBeCloseTo(10_000 + 3 * 12 * 0.95);
  const late = nextLook({ ...anchored, now: 10_040, overdue: 1 });
  expect(late.at).toBeGreaterThan(10_040);
  expect(late.at - 10_040).toBeLessThanOrEqual(250);
});

it("does not repeat lateness: a measured pace far beyond the holds and round trips is capped", () => {
  const slow = nextLook({ ...base, holdMs: 5, cycleMs: 400, ahead: 0 });
  expect(slow.at - 10_000).toBeLessThanOrEqual((5 + 2 * 4) * 2.5);
});

it("never sleeps past a handover to it, less a slack, even once the holder is presumed gone", () => {
  // Presumed gone, holder's lease 10 s: without a bound the head sleeps until the lease ends.
  const silent = { ...base, leaseMs: 10_000, now: 14_500, overdue: 1 };
  expect(nextLook(silent)).toEqual({ at: 20_000, reason: "expiry" });
  // A handover to it would last 1 s: it looks within that, less max(50, 100) + 2 round trips.
  expect(nextLook({ ...silent, handoffMs: 1000 })).toEqual({ at: 14_500 + 1000 - 108, reason: "look" });
  // Even a waiter told to look at most every 2 s: the handover lease bounds its sleep first.
  expect(nextLook({ ...silent, handoffMs: 1000, minPollMs: 2000 })).toEqual({ at: 14_500 + 1000 - 108, reason: "look" });
  // A handover lease longer than the sleep changes nothing (the takeover costs no extra look).
  expect(nextLook({ ...silent, handoffMs: 10_000 })).toEqual({ at: 20_000, reason: "expiry" });
});

it("aims at the turn from when the current grant began: a hold and two round trips per grant ahead, landing just after", () => {
  // Granted at 9_990 (the item's acquiredAt on our clock); hold 5 ms, round trip 4 ms, two waiters ahead.
  const started = { ...base, holdMs: 5, ahead: 2, grantedAt: 9_990, cycleMs: 400 };
  expect(nextLook(started).at).toBeCloseTo(9_990 + 3 * (5 + 2 * 4) + 4 / 2);
  // A measured pace, however slow, does not delay it: only the holds and the round trips do.
  expect(nextLook({ ...started, cycleMs: 12 }).at).toBe(nextLook(started).at);
  // Looked and found it not yet ours: back off from now, never before the next poll.
  const early = nextLook({ ...started, now: 10_040, overdue: 1 });
  expect(early.at).toBeGreaterThanOrEqual(10_040 + 2);
  expect(early.at - 10_040).toBeLessThanOrEqual(250);
});
