/** Typed errors across the Lambda boundary: toWire then fromWire gives back the same class, message and fields. */
import { describe, expect, it } from "vitest";
import {
  ClaimOutcomeUnknownError,
  ERROR_CLASSES,
  FencepostError,
  fromWire,
  InvalidArgumentError,
  LockTimeoutError,
  RemoteFunctionError,
  toWire,
  wireError,
} from "../../lib/errors.js";

describe("errors on the wire", () => {
  it("rebuilds the class, the message and every field", () => {
    const cases: FencepostError[] = [
      new InvalidArgumentError("leaseMs", "must be a positive number of milliseconds, got -1"),
      new LockTimeoutError("jobs", 1234, "worker-7"),
      new ClaimOutcomeUnknownError({ namespace: "email", value: "a@example.com", owner: "u1", incarnation: "inc-1" }),
    ];
    for (const original of cases) {
      const rebuilt = fromWire(toWire(original));
      expect(rebuilt).toBeInstanceOf(original.constructor);
      expect(rebuilt).toBeInstanceOf(FencepostError);
      expect(rebuilt.name).toBe(original.name);
      expect(rebuilt.message).toBe(original.message);
      expect({ ...rebuilt }).toEqual({ ...original });
    }
    expect((fromWire(toWire(cases[0]!)) as InvalidArgumentError).field).toBe("leaseMs");
  });

  it("writes the message for people first, and the fields as one JSON line after it", () => {
    const wire = toWire(new InvalidArgumentError("name", "must be a non-empty string"));
    expect(wire).toEqual({ errorType: "InvalidArgumentError", errorMessage: 'Invalid name: must be a non-empty string\nDetails: {"field":"name"}' });
    const thrown = wireError(new InvalidArgumentError("name", "must be a non-empty string"));
    expect([thrown.name, thrown.message]).toEqual([wire.errorType, wire.errorMessage]);
  });

  it("turns anything else into RemoteFunctionError, and keeps a message whose last line is not JSON whole", () => {
    const timeout = fromWire({ errorType: "Sandbox.Timedout", errorMessage: "Task timed out after 30.00 seconds" });
    expect(timeout).toBeInstanceOf(RemoteFunctionError);
    expect((timeout as RemoteFunctionError).errorType).toBe("Sandbox.Timedout");
    const odd = fromWire({ errorType: "FencepostError", errorMessage: "first\nDetails: not json" });
    expect(odd.message).toBe("first\nDetails: not json");
    // Negative control: a name that only looks like ours, or an inherited key, is not rebuilt as one of ours.
    expect(fromWire({ errorType: "toString", errorMessage: "x" })).toBeInstanceOf(RemoteFunctionError);
    expect(Object.keys(ERROR_CLASSES)).toContain("TransactionTimeoutError");
  });

  it("rebuilds only data fields from a hostile or malformed wire message", () => {
    const hostile = fromWire({ errorType: "InvalidArgumentError", errorMessage: 'Invalid x: y\nDetails: {"__proto__":null,"toString":1,"name":"Evil","field":"x"}' });
    expect(hostile).toBeInstanceOf(InvalidArgumentError);
    expect(hostile.name).toBe("InvalidArgumentError");
    expect(String(hostile)).toBe("InvalidArgumentError: Invalid x: y");
    expect((hostile as InvalidArgumentError).field).toBe("x");
    expect(fromWire({ errorType: "FencepostError", errorMessage: 42 as unknown as string }).message).toBe("42");
    expect(fromWire({ errorType: "FencepostError", errorMessage: "a\nDetails: [1]" }).message).toBe("a\nDetails: [1]");
  });
});
