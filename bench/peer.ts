/**
 * The peer: npm `dynamodb-lock-client` (FailOpen), driven through a thin adapter from the
 * AWS SDK v2 DocumentClient callback API it expects to an SDK v3 DocumentClient, so both
 * libraries send real requests to the same DynamoDB Local and are counted by the same
 * middleware. The adapter only translates call shapes and error codes.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { createRequire } from "node:module";

type Callback = (error: (Error & { code?: string }) | null, data?: unknown) => void;

function v2Adapter(dynamodb: DynamoDBClient) {
  const doc = DynamoDBDocumentClient.from(dynamodb);
  const call = (command: GetCommand | PutCommand | DeleteCommand) => (callback: Callback) =>
    void (doc.send(command as GetCommand) as Promise<unknown>).then(
      (data) => callback(null, data),
      (error: Error & { code?: string }) => {
        error.code = error.name;
        callback(error);
      },
    );
  return {
    get: (params: ConstructorParameters<typeof GetCommand>[0], cb: Callback) => call(new GetCommand(params))(cb),
    put: (params: ConstructorParameters<typeof PutCommand>[0], cb: Callback) => call(new PutCommand(params))(cb),
    delete: (params: ConstructorParameters<typeof DeleteCommand>[0], cb: Callback) => call(new DeleteCommand(params))(cb),
  };
}

export interface PeerLock {
  fencingToken: number;
  heartbeatTimeout?: NodeJS.Timeout;
  release(cb: (error?: Error) => void): void;
}

interface PeerClient {
  acquireLock(id: string, cb: (error: (Error & { code?: string }) | null, lock?: PeerLock) => void): void;
}

export function peerClient(dynamodb: DynamoDBClient, tableName: string, leaseMs: number): { acquire(name: string): Promise<PeerLock> } {
  const require = createRequire(import.meta.url);
  const { FailOpen } = require("dynamodb-lock-client") as { FailOpen: new (config: Record<string, unknown>) => PeerClient };
  const client = new FailOpen({
    dynamodb: v2Adapter(dynamodb),
    lockTable: tableName,
    partitionKey: "pk",
    heartbeatPeriodMs: Math.round(leaseMs / 3),
    leaseDurationMs: leaseMs,
  });
  return {
    acquire: (name) =>
      new Promise((resolve, reject) => client.acquireLock(`peer#${name}`, (error, lock) => (error ? reject(error) : resolve(lock!)))),
  };
}

export const releasePeer = (lock: PeerLock) => new Promise<void>((resolve, reject) => lock.release((e) => (e ? reject(e) : resolve())));
