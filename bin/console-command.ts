/**
 * `fencepost console`: the operator console (lib/console) for the stack the environment
 * points at: the local stack of `fencepost up` when one runs here, else AWS_ENDPOINT_URL,
 * else AWS with the default credential chain, the functions named by
 * FENCEPOST_LOCK_FUNCTION, FENCEPOST_TXN_FUNCTION and FENCEPOST_COORDINATION_FUNCTION and the
 * log table by --log-table / FENCEPOST_LOG_TABLE (the stack outputs). A part that is not
 * named shows as not configured. Served on 127.0.0.1, read-only unless --allow-actions.
 */
import { hostname, userInfo } from "node:os";
import { isLoopback, startConsole, type ConsoleSources, type RunningConsole } from "../lib/console/index.js";
import { coordinationService, ConnectionError, lockService, logTable, txnService, untilInterrupted } from "./connection.js";

export interface ConsoleFlags {
  json: boolean;
  endpoint?: string;
  host?: string;
  port?: string;
  operator?: string;
  "allow-actions": boolean;
  "log-table"?: string;
}

/** The console's port unless --port says otherwise. */
export const DEFAULT_CONSOLE_PORT = 8420;

/** A usage mistake (exit code 2); recognised by name, since the CLI loads this module lazily. */
export class ConsoleUsageError extends Error {
  override name = "ConsoleUsageError";
}

/** Who acts, in the audit trail: the same default as `fencepost tx abort|forget`. */
export const defaultOperator = () => `${userInfo().username}@${hostname()}`;

/** The console's options from the flags, checked. */
export function consoleSettings(flags: Omit<ConsoleFlags, "json" | "endpoint" | "log-table">): { host: string; port: number; allowActions: boolean; operator: string; warning?: string } {
  const host = flags.host ?? "127.0.0.1";
  const port = flags.port === undefined ? DEFAULT_CONSOLE_PORT : Number(flags.port);
  if (!(Number.isInteger(port) && port >= 0 && port < 65536)) throw new ConsoleUsageError(`--port must be a port number (0: any free port), got '${flags.port}'`);
  const warning = isLoopback(host)
    ? undefined
    : `warning: the console listens on ${host}, not loopback: anyone who can reach this host and port sees the stack${flags["allow-actions"] ? " and can abort transactions" : ""}. It has no authentication.`;
  return { host, port, allowActions: flags["allow-actions"], operator: flags.operator ?? defaultOperator(), ...(warning ? { warning } : {}) };
}

/** What `fencepost up` and `fencepost console` print about a running console. */
export function describeConsole(running: RunningConsole, allowActions: boolean): string[] {
  const pages = ["locks", "streams", "transactions", "membership"].map((p) => `${running.url}#/${p}`);
  return [
    `  Console   ${running.url} (${allowActions ? "actions enabled: recover, abort, forget" : "read-only; --allow-actions to recover, abort, forget"})`,
    `            pages: ${pages.join("  ")}`,
    `            JSON:  ${running.url}api/{locks,streams,transactions,membership}  live: ${running.url}api/events?topic=/api/locks`,
  ];
}

/** Starts on `port`, or on any free port if `fallback` and it is taken. */
export async function listen(options: Parameters<typeof startConsole>[0] & { port: number }, fallback: boolean): Promise<RunningConsole> {
  try {
    return await startConsole(options);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    if (fallback) return startConsole({ ...options, port: 0 });
    throw new ConsoleUsageError(`port ${options.port} on ${options.host ?? "127.0.0.1"} is in use: pass --port N (0: any free port)`);
  }
}

export async function consoleCommand(flags: ConsoleFlags, out: (line: string) => void, progress: (line: string) => void): Promise<number> {
  const settings = consoleSettings(flags);
  const missing: string[] = [];
  const part = <T>(what: string, env: string, output: string, find: () => T): T | undefined => {
    try {
      return find();
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      missing.push(`${what}: no local stack is running here (\`npm start\`); name the function with ${env} (the stack output ${output})`);
      return undefined;
    }
  };
  const locks = part("locks", "FENCEPOST_LOCK_FUNCTION", "LockFunctionName", () => lockService(flags));
  const txn = part("transactions", "FENCEPOST_TXN_FUNCTION", "TxnFunctionName", () => txnService(flags));
  const coordination = part("membership", "FENCEPOST_COORDINATION_FUNCTION", "CoordinationFunctionName", () => coordinationService(flags));
  const log = logTable(flags);
  if (!log) missing.push("streams: name the log table with --log-table or FENCEPOST_LOG_TABLE (the stack output LogTableName)");
  const sources: ConsoleSources = {
    ...(locks ? { locks } : {}),
    ...(txn ? { txn } : {}),
    ...(coordination ? { coordination } : {}),
    ...(log ? { log } : {}),
  };
  const where = (locks ?? txn ?? coordination ?? log)?.where ?? "nothing configured";
  if (settings.warning) progress(settings.warning);
  const running = await listen({ sources, host: settings.host, port: settings.port, allowActions: settings.allowActions, operator: settings.operator, where }, false);
  if (flags.json) out(JSON.stringify({ url: running.url, allowActions: settings.allowActions, where, missing }));
  else {
    out(`Fencepost console for ${where}`);
    for (const line of describeConsole(running, settings.allowActions)) out(line);
    for (const line of missing) out(`  not configured: ${line}`);
    out("Ctrl-C stops it.");
  }
  await untilInterrupted();
  await running.close();
  return 0;
}
