/**
 * How the CLI finds the lock service (and the coordinator and coordination services):
 * `--endpoint` / AWS_ENDPOINT_URL (LocalStack, or any Lambda endpoint) with `--function` /
 * FENCEPOST_LOCK_FUNCTION (FENCEPOST_TXN_FUNCTION, FENCEPOST_COORDINATION_FUNCTION); else the local stack that
 * `fencepost up` (npm start) is serving, through the state file it writes; else AWS with
 * the default credential chain and `--function`.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { LocalCloud } from "../lib/local/index.js";

/** Where `fencepost up` records the running local stack (FENCEPOST_STATE_FILE overrides). */
export const STATE_FILE = resolve(process.env["FENCEPOST_STATE_FILE"] ?? join(".fencepost", "local.json"));

export interface LocalState {
  pid: number;
  region: string;
  endpoints: LocalCloud["endpoints"];
  credentials: { accessKeyId: string; secretAccessKey: string };
  tables: Record<string, string>;
  functions: Record<string, string>;
}

export function writeState(cloud: LocalCloud): void {
  const state: LocalState = {
    pid: process.pid,
    region: cloud.region,
    endpoints: cloud.endpoints,
    credentials: cloud.clientConfig("dynamodb").credentials,
    tables: cloud.tables,
    functions: cloud.functions,
  };
  mkdirSync(dirname(STATE_FILE), { recursive: true });
  writeFileSync(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
}

export function removeState(): void {
  rmSync(STATE_FILE, { force: true });
}

function readState(): LocalState | undefined {
  if (!existsSync(STATE_FILE)) return undefined;
  const state = JSON.parse(readFileSync(STATE_FILE, "utf8")) as LocalState;
  try {
    process.kill(state.pid, 0); // still running?
    return state;
  } catch {
    return undefined;
  }
}

export class ConnectionError extends Error {
  override name = "ConnectionError";
}

/** Which function a command talks to: its role in the template, its env override, its stack output. */
interface ServiceSpec {
  role: string;
  env: string;
  output: string;
  what: string;
}

const LOCK_SERVICE: ServiceSpec = { role: "locks-function", env: "FENCEPOST_LOCK_FUNCTION", output: "LockFunctionName", what: "lock function" };
const TXN_SERVICE: ServiceSpec = { role: "txn-function", env: "FENCEPOST_TXN_FUNCTION", output: "TxnFunctionName", what: "coordinator function" };
const COORDINATION_SERVICE: ServiceSpec = { role: "coordination-function", env: "FENCEPOST_COORDINATION_FUNCTION", output: "CoordinationFunctionName", what: "coordination function" };

function service(spec: ServiceSpec, flags: { endpoint?: string; function?: string }): { lambda: LambdaClient; functionName: string; where: string } {
  const endpoint = flags.endpoint ?? process.env["AWS_ENDPOINT_URL"];
  const named = flags.function ?? process.env[spec.env];
  if (!endpoint) {
    const state = readState();
    const local = state?.functions[spec.role];
    if (state && state.endpoints.lambda && local) {
      return {
        lambda: new LambdaClient({ endpoint: state.endpoints.lambda, region: state.region, credentials: state.credentials }),
        functionName: named ?? local,
        where: `local stack at ${state.endpoints.lambda}`,
      };
    }
  }
  if (!named) {
    throw new ConnectionError(
      endpoint
        ? `name the ${spec.what} with --function (or ${spec.env}); after \`npm run deploy:local\` it is the stack output ${spec.output}`
        : `no local stack is running here (start one with \`npm start\`), and no --function was given for AWS (the stack output ${spec.output})`,
    );
  }
  return { lambda: new LambdaClient(endpoint ? { endpoint } : {}), functionName: named, where: endpoint ?? "AWS" };
}

/**
 * The broadcast log table, for reads (the console's streams): the local stack's when one
 * is running here and no endpoint is named; else `--log-table` / FENCEPOST_LOG_TABLE (the
 * stack output LogTableName) at the endpoint or on AWS. Undefined when none is named.
 */
export function logTable(flags: { endpoint?: string; "log-table"?: string }): { dynamodb: DynamoDBClient; tableName: string; where: string } | undefined {
  const endpoint = flags.endpoint ?? process.env["AWS_ENDPOINT_URL"];
  const named = flags["log-table"] ?? process.env["FENCEPOST_LOG_TABLE"];
  if (!endpoint) {
    const state = readState();
    const local = state?.tables["log"];
    if (state && local) {
      return { dynamodb: new DynamoDBClient({ endpoint: state.endpoints.dynamodb, region: state.region, credentials: state.credentials }), tableName: named ?? local, where: `local stack at ${state.endpoints.dynamodb}` };
    }
  }
  if (!named) return undefined;
  return { dynamodb: new DynamoDBClient(endpoint ? { endpoint } : {}), tableName: named, where: endpoint ?? "AWS" };
}

export const lockService = (flags: { endpoint?: string; function?: string }) => service(LOCK_SERVICE, flags);
export const txnService = (flags: { endpoint?: string; function?: string }) => service(TXN_SERVICE, flags);
export const coordinationService = (flags: { endpoint?: string; function?: string }) => service(COORDINATION_SERVICE, flags);

/**
 * Resolves on the first SIGINT or SIGTERM and ignores any that follow, so a cleanup
 * (releasing a lock, stopping the emulators) is not cut short: Ctrl-C reaches npm, tsx
 * and this process, and tsx relays it too, so one keypress can arrive twice.
 */
export function untilInterrupted(signal?: AbortSignal): Promise<void> {
  return new Promise((done) => {
    // Lock timers never keep a process alive (by design, for Lambda); this wait must.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const ignore = () => undefined;
    const first = () => {
      clearInterval(keepAlive);
      process.off("SIGINT", first).off("SIGTERM", first).on("SIGINT", ignore).on("SIGTERM", ignore);
      done();
    };
    process.on("SIGINT", first).on("SIGTERM", first);
    signal?.addEventListener("abort", () => first(), { once: true });
  });
}
