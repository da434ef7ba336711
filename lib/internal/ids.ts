/** Identifiers derived from names: stable, fixed-length, safe in any AWS id field. */
import { createHash } from "node:crypto";

/** The SHA-256 of `text` as 64 lowercase hex characters. */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
