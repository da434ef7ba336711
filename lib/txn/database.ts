/**
 * Which database a DynamoDB client talks to: its region, endpoint and access key id,
 * resolved from the client's own configuration. Two clients with the same identity reach
 * the same tables, so one TransactWriteItems can span what both see; that is how the
 * coordinator decides the fast path, instead of comparing client objects.
 * Assumes: a different access key may be the same account (then the fast path is simply
 * not taken, which is safe: the protocol path gives the same outcome).
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";

const identities = new WeakMap<DynamoDBClient, Promise<string>>();

interface EndpointLike {
  protocol?: string;
  hostname?: string;
  port?: number;
  path?: string;
  url?: URL;
}

async function resolve(client: DynamoDBClient): Promise<string> {
  const config = client.config as unknown as {
    region: () => Promise<string>;
    endpoint?: () => Promise<EndpointLike>;
    credentials: () => Promise<{ accessKeyId: string }>;
  };
  const region = await config.region();
  const endpoint = config.endpoint ? await config.endpoint() : undefined;
  const url = endpoint?.url ? endpoint.url.href : endpoint ? `${endpoint.protocol ?? "https:"}//${endpoint.hostname ?? ""}${endpoint.port ? `:${endpoint.port}` : ""}${endpoint.path ?? "/"}` : "default";
  const credentials = await config.credentials().catch(() => ({ accessKeyId: "(none)" }));
  return JSON.stringify([region, url.toLowerCase(), credentials.accessKeyId]);
}

/** The identity of the database `client` reaches (cached per client). */
export function databaseOf(client: DynamoDBClient): Promise<string> {
  let identity = identities.get(client);
  if (!identity) {
    identity = resolve(client);
    identities.set(client, identity);
  }
  return identity;
}

/** True if every client reaches the same database as `reference`. */
export async function sameDatabase(reference: DynamoDBClient, clients: readonly DynamoDBClient[]): Promise<boolean> {
  const want = await databaseOf(reference);
  for (const c of clients) if (c !== reference && (await databaseOf(c)) !== want) return false;
  return true;
}
