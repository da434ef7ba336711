/**
 * Request validation at the Lambda boundary: a JSON schema compiled once with ajv, and
 * the first violation reported as an InvalidArgumentError naming the field, so a caller
 * learns exactly what to fix and nothing is written.
 */
import { Ajv, type ErrorObject } from "ajv";
import { InvalidArgumentError } from "../errors.js";

const ajv = new Ajv({ discriminator: true, allErrors: false, strict: true });

/** Compiles `schema`; the returned function returns its input typed, or throws InvalidArgumentError. */
export function validator<T>(schema: object): (input: unknown) => T {
  const validate = ajv.compile(schema);
  const branches = (schema as { oneOf?: { properties?: Record<string, { const?: unknown }> }[] }).oneOf ?? [];
  const tags = (tag: string) => branches.map((b) => b.properties?.[tag]?.const).filter((v) => v !== undefined).join(", ");
  return (input) => {
    if (validate(input)) return input as T;
    throw toInvalidArgument(validate.errors?.[0], input, tags);
  };
}

function toInvalidArgument(error: ErrorObject | undefined, input: unknown, tags: (tag: string) => string): InvalidArgumentError {
  if (!error) return new InvalidArgumentError("(request)", "is not valid");
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return new InvalidArgumentError("(request)", "must be a JSON object with an 'action' field");
  }
  const path = error.instancePath.split("/").filter(Boolean).join(".");
  const under = (field: string) => (path ? `${path}.${field}` : field);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "required":
      return new InvalidArgumentError(under(String(params["missingProperty"])), "is required");
    case "additionalProperties":
      return new InvalidArgumentError(under(String(params["additionalProperty"])), "is not a known field for this action");
    case "discriminator":
      return new InvalidArgumentError(under(String(params["tag"])), `must be one of ${tags(String(params["tag"]))}`);
    case "enum":
      return new InvalidArgumentError(path || "(request)", `must be one of ${(params["allowedValues"] as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`);
    default:
      return new InvalidArgumentError(path || "(request)", error.message ?? "is not valid");
  }
}

/** The `action` values of a request schema's `oneOf` branches (the actions a function serves). */
export function actionsOf(schema: object): string[] {
  const branches = (schema as { oneOf?: { properties?: { action?: { const?: unknown } } }[] }).oneOf ?? [];
  return branches.map((b) => b.properties?.action?.const).filter((a): a is string => typeof a === "string");
}
