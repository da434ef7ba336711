/** DynamoDB attribute values, written by hand where marshalling would hide the shape of a condition. */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";

/** A DynamoDB item, as the low-level client reads and writes it. */
export type Item = Record<string, AttributeValue>;

/** A string attribute. */
export const stringValue = (v: string): AttributeValue => ({ S: v });

/** A number attribute. */
export const numberValue = (v: number): AttributeValue => ({ N: String(v) });
