/**
 * JSON-schema fragments for the request schemas of every Fencepost service (draft 2020-12
 * subset, compiled by ajv in lib/service). Plain data: no validator lives here, so the
 * core can declare its wire protocol without depending on the service layer.
 */

/**
 * A whole number from `minimum` to `maximum` (schema fragment). The bound is always finite:
 * JSON numbers such as 1e308 are "integers" to a schema, yet overflow every use.
 */
export const integer = (minimum: number, maximum = Number.MAX_SAFE_INTEGER) => ({ type: "integer", minimum, maximum });

/** A non-empty string of at most `maxLength` characters (schema fragment). */
export const text = (maxLength: number) => ({ type: "string", minLength: 1, maxLength });

/** One branch of a request union dispatched on `action`: exactly these fields, `required` among them. */
export function action(name: string, properties: Record<string, object>, required: string[]) {
  return { type: "object", properties: { action: { const: name }, ...properties }, required: ["action", ...required], additionalProperties: false };
}
