/**
 * Input checks every Fencepost API runs before it sends a request: names and durations.
 * Each failure is an InvalidArgumentError naming the field, so nothing is written on bad
 * input and the caller learns exactly what to fix.
 */
import { InvalidArgumentError } from "../errors.js";

/** Longest name (of a lock, a stream, a transaction, an owner...), in UTF-8 bytes. */
export const MAX_NAME_BYTES = 512;

/**
 * A name: a non-empty, well-formed Unicode string of at most MAX_NAME_BYTES UTF-8 bytes,
 * without control characters.
 */
export function validateName(field: string, name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length === 0) throw new InvalidArgumentError(field, "must be a non-empty string");
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_NAME_BYTES) throw new InvalidArgumentError(field, `must be at most ${MAX_NAME_BYTES} bytes as UTF-8, got ${bytes}`);
  if (!isWellFormed(name)) throw new InvalidArgumentError(field, "must be well-formed Unicode (it contains a lone surrogate)");
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw new InvalidArgumentError(field, "must not contain control characters");
}

function isWellFormed(text: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

/** A fencing token: a positive safe integer, as lock grants issue them. */
export function validateFencingToken(token: unknown): asserts token is number {
  if (typeof token !== "number" || !Number.isSafeInteger(token) || token < 1) {
    throw new InvalidArgumentError("fencingToken", `must be a positive integer from a lock grant, got ${String(token)}`);
  }
}

/**
 * An optional duration that must be positive (and at most MAX_SAFE_INTEGER ms, or, with
 * `orForever`, Infinity: a wait without limit) when given.
 */
export function validatePositiveMs(field: string, value: number | undefined, options: { orForever?: boolean } = {}): void {
  if (value !== undefined && !(typeof value === "number" && value > 0 && (value <= Number.MAX_SAFE_INTEGER || (options.orForever === true && value === Number.POSITIVE_INFINITY)))) {
    throw new InvalidArgumentError(field, `must be a positive number of milliseconds, got ${value}`);
  }
}

/** An optional duration that must be zero or positive (and at most MAX_SAFE_INTEGER ms) when given. */
export function validateNonNegativeMs(field: string, value: number | undefined): void {
  if (value !== undefined && !(typeof value === "number" && value >= 0 && value <= Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError(field, `must be zero or a positive number of milliseconds, got ${value}`);
  }
}
