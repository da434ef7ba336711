#!/usr/bin/env node
/**
 * The `fencepost` command line.
 *
 *   fencepost up [--json]       serve the stack on the embedded local cloud, and the console, until Ctrl-C
 *   fencepost console [options] the operator console (a local web page) for the stack the environment points at
 *   fencepost verify [options]  run the verification harness (lib/check) and write a report
 *   fencepost lock acquire|release|inspect|list [name] [options]
 *   fencepost tx list|show|recover|abort|forget [txId] [options]
 *   fencepost kv get|put|delete|list|watch [key|prefix] [value] [options]
 *   fencepost members list|watch GROUP [options]
 *   fencepost session list [options]
 */
import { parseArgs } from "node:util";
// The SDK's notice that its 2027 releases need Node 22 is for library users, not CLI output.
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { LocalCloudError, shellExports, startLocalCloud, type LocalCloud } from "../lib/local/index.js";
import type { WorkloadName } from "../lib/check/index.js";
import { FencepostError } from "../lib/index.js";
import { ConnectionError, removeState, STATE_FILE, untilInterrupted, writeState } from "./connection.js";
import { lockCommand, LockUsageError } from "./lock-command.js";
import { txCommand, TxUsageError } from "./tx-command.js";
import { streamCommand, StreamUsageError } from "./stream-command.js";
import { coordinationCommand, CoordinationUsageError, COORDINATION_COMMANDS, type CoordinationCommand } from "./coordination-command.js";

const USAGE = `usage: fencepost <command> [options]

commands:
  up        start DynamoDB Local and the SQS emulator, provision the Fencepost stack, serve it and
            the operator console (read-only; --no-console: without it) until Ctrl-C
  console   the operator console: a web page of locks, streams, transactions and membership, live,
            for the local stack of \`fencepost up\`, AWS_ENDPOINT_URL, or AWS (FENCEPOST_*_FUNCTION,
            --log-table); on 127.0.0.1, read-only unless --allow-actions
  verify    run the lock, register, counter, broadcast, bank (2PC) and coordination workloads under seeded
            faults, check the histories, run the negative controls; exit 1 on any anomaly or unknown verdict
  lock acquire NAME     acquire a lock and print its fencing token (--hold keeps it, with
                        heartbeats, until Ctrl-C; otherwise its lease simply runs out)
  lock release NAME --token N   release a lock this owner holds
  lock break NAME --token N     release a stuck or gone holder's grant (the token inspect shows);
                        the holder learns it at its next heartbeat, fencing tokens stop its writes
  lock inspect NAME     who holds a lock, with which token
  lock list             every lock in the table
  tx list [--all]       transactions in doubt: unfinished past their deadline (--all: every
                        unfinished one)
  tx show ID            a transaction's record: decision, participants, audit trail
  tx run ID --branches JSON   run a transaction through the coordinator function; JSON is
                        [{"participant":"dynamodb:<table>|outbox:<url>|lambda:<fn>","input":...}]
                        (--branches @file.json reads it from a file); exit 1 if it aborted
  tx recover            finish every transaction past its deadline now (the scheduled
                        recovery does this every minute); exit 1 if any stays in doubt
  tx abort ID --reason R    abort an undecided transaction (audited; a commit cannot be overturned)
  tx forget ID --reason R   mark a decided transaction done without a lost participant's
                            acknowledgement (audited)
  stream tail NAME      the last messages of a broadcast stream, oldest first (--follow: then
                        every later one in sequence order until Ctrl-C); reads the log table
  kv get KEY            a key's value and revisions (exit 1 if it does not exist)
  kv put KEY VALUE      write a key and print the change's revision; VALUE is JSON if it
                        parses as JSON (42, true, {"a":1}, '"42"'), else the text itself
  kv delete KEY         delete a key (exit 1 if there was nothing to delete)
  kv list [PREFIX]      the keys under PREFIX as of one revision
  kv watch [PREFIX]     print every change under PREFIX as it comes, in revision order,
                        until Ctrl-C (polls the change log)
  members list GROUP    a group's view: its epoch and its live members with their meta
  members watch GROUP   print the view, then every membership change with the view it
                        makes, until Ctrl-C
  session list          the namespace's live sessions (sessions are opened and kept alive
                        by clients: the Coordination class)

options:
  --json                machine-readable output
  --seed N              (verify) replay a run's fault schedule; default random
  --duration S          (verify) seconds the workloads run; default 60
  --control S           (verify) seconds each negative control runs; default duration/6, 5..15
  --report FILE         (verify) HTML report; default verify-report.html
  --only W[,W...]       (verify) only these workloads and their controls: locks, register,
                        counter, broadcast, bank, coordination
  --endpoint URL        (lock, tx, kv, members, session, console, stream) the endpoint; default
                        AWS_ENDPOINT_URL, else the local stack of \`fencepost up\`, else AWS
  --function NAME       (lock) the lock function; default FENCEPOST_LOCK_FUNCTION or the
                        local stack's (on AWS: the stack output LockFunctionName);
                        (tx) the coordinator function: FENCEPOST_TXN_FUNCTION, TxnFunctionName;
                        (kv, members, session) the coordination function:
                        FENCEPOST_COORDINATION_FUNCTION, CoordinationFunctionName
  --owner ID            (lock) owner id; default cli@<hostname>
  --token N             (lock release, lock break) the fencing token to release
  --wait S, --lease S   (lock acquire) seconds to wait (default 10) and lease (default 60)
  --hold                (lock acquire) keep the lock until Ctrl-C
  --limit N             (lock list, tx list) at most N (default 100); (kv list, session list)
                        at most N (default and most 1000); (stream tail) the last N (default 20)
  --follow              (stream tail) keep printing new messages until Ctrl-C
  --namespace NS        (kv, members, session) the coordination namespace; default "default"
  --from REV            (kv watch) start at this revision (default: the next change); one no
                        longer kept (24 h) fails with CompactedError
  --if-revision N       (kv put, kv delete) only if the key is at revision N (0: absent)
  --all                 (session list) closed and expired sessions too
  --operator NAME       (tx abort|forget, console) who acts; default user@hostname
  --reason TEXT         (tx abort|forget) why; required
  --in-doubt            (tx list) the default; accepted for clarity
  --prefix P            (tx list, tx recover) only transaction ids starting with P
  --branches JSON       (tx run) the transaction's branches, or @FILE to read them from FILE
  --allow-actions       (console, up) let the page recover, abort and forget transactions (each
                        confirmed, with a reason, audited as --operator); default read-only
  --host H              (console, up) the console's address; default 127.0.0.1 (another address
                        is reachable by others, with no authentication: a warning says so)
  --port N              (console, up) the console's port; default 8420 (0: any free port)
  --log-table NAME      (console, stream) the broadcast log table; default FENCEPOST_LOG_TABLE or the
                        local stack's (on AWS: the stack output LogTableName)
  --no-console          (up) do not serve the console
  -h, --help            this help; after a command, that command's help
  -v, --version         the version

AWS_ENDPOINT_URL points every command at an external endpoint (LocalStack) instead of
the embedded local cloud.`;

function describe(cloud: LocalCloud): string {
  const width = Math.max(0, ...[cloud.tables, cloud.queues, cloud.functions].flatMap((byRole) => Object.keys(byRole).map((role) => role.length)));
  const lines = [
    `Fencepost local cloud is up (${cloud.embedded ? "embedded emulators" : "external endpoint"}, region ${cloud.region})`,
    `  DynamoDB  ${cloud.endpoints.dynamodb}`,
    `  SQS       ${cloud.endpoints.sqs}`,
    `  Lambda    ${cloud.endpoints.lambda ?? "(no functions served)"}`,
    ...Object.entries(cloud.tables).map(([role, name]) => `  table    ${role.padEnd(width)} ${name}`),
    ...Object.entries(cloud.queues).map(([role, q]) => `  queue    ${role.padEnd(width)} ${q.url}`),
    ...Object.entries(cloud.functions).map(([role, name]) => `  function ${role.padEnd(width)} ${name}`),
    "",
    "Point the AWS SDK or CLI at it:",
    `  ${shellExports(cloud)}`,
    "Try, in another shell:  npm run fencepost -- lock acquire demo",
    "Ctrl-C stops it.",
  ];
  return lines.join("\n");
}

interface UpFlags {
  json: boolean;
  console: boolean;
  host?: string;
  port?: string;
  operator?: string;
  "allow-actions": boolean;
}

async function up(flags: UpFlags): Promise<void> {
  const { json } = flags;
  const startedAt = performance.now();
  // The console's modules (its server and page libraries) load only for the commands that serve it.
  const { consoleSettings, describeConsole, listen } = await import("./console-command.js");
  const { localSources } = await import("../lib/console/index.js");
  const settings = flags.console ? consoleSettings(flags) : undefined;
  if (!json) process.stdout.write("Starting DynamoDB Local and the SQS emulator...\n");
  const cloud = await startLocalCloud({ template: await localTemplate() });
  writeState(cloud);
  // The console of this stack: on its usual port, or any free one if that is taken.
  const running = settings
    ? await listen({ sources: localSources({ ...cloud, credentials: cloud.clientConfig("dynamodb").credentials }), host: settings.host, port: settings.port, allowActions: settings.allowActions, operator: settings.operator, where: `local stack, ${cloud.region}` }, flags.port === undefined)
    : undefined;
  const summary = { endpoints: cloud.endpoints, region: cloud.region, tables: cloud.tables, queues: cloud.queues, functions: cloud.functions, state: STATE_FILE, ...(running ? { console: running.url } : {}) };
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    const lines = describe(cloud).split("\n");
    // The console's lines go after the endpoints' (before the tables).
    const at = lines.findIndex((line) => line.startsWith("  Lambda")) + 1;
    if (running && settings) lines.splice(at, 0, ...describeConsole(running, settings.allowActions));
    if (settings?.warning) process.stderr.write(`${settings.warning}\n`);
    process.stdout.write(`${lines.join("\n")}\n(ready in ${((performance.now() - startedAt) / 1000).toFixed(1)} s)\n`);
  }
  await untilInterrupted();
  if (!json) process.stdout.write("\nStopping...\n");
  await running?.close();
  removeState();
  await cloud.stop();
}

/** The synthesized template of the stack (aws-cdk-lib loads only when a command needs it). */
async function localTemplate() {
  const { synthesizeTemplate } = await import("../infra/synth.js");
  return synthesizeTemplate();
}

function seconds(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number of seconds, got '${value}'`);
  return n * 1000;
}

class UsageError extends Error {
  override name = "UsageError";
}

interface VerifyFlags {
  json: boolean;
  seed?: string;
  duration?: string;
  control?: string;
  report?: string;
  only?: string;
}

async function verify(flags: VerifyFlags): Promise<number> {
  const seed = flags.seed === undefined ? undefined : Number(flags.seed);
  if (seed !== undefined && !(Number.isSafeInteger(seed) && seed >= 0)) throw new UsageError(`--seed must be a non-negative integer, got '${flags.seed}'`);
  // The harness and the CDK app load only for the commands that use them: every other command starts faster.
  const { formatTable, renderHtml, runVerification, WORKLOADS } = await import("../lib/check/index.js");
  const durationMs = seconds("--duration", flags.duration, 60);
  const controlMs = flags.control === undefined ? undefined : seconds("--control", flags.control, 0);
  const reportPath = resolve(flags.report ?? "verify-report.html");
  const only = flags.only?.split(",").map((w) => w.trim());
  const unknown = only?.filter((w) => !(WORKLOADS as readonly string[]).includes(w)) ?? [];
  if (unknown.length > 0) throw new UsageError(`--only: unknown workload '${unknown.join("', '")}'; choose from ${WORKLOADS.join(", ")}`);
  const log = (line: string) => {
    if (flags.json) return;
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  };
  log("Starting the local cloud...");
  const cloud = await startLocalCloud({ template: await localTemplate() });
  try {
    const tableName = cloud.tables["locks"];
    if (!tableName) throw new LocalCloudError("the synthesized template has no lock table (tag fencepost:resource=locks)");
    let lastLog = 0;
    const logTable = cloud.tables["log"];
    const queue = cloud.queues["broadcast"];
    const report = await runVerification({
      dynamodb: cloud.clientConfig("dynamodb"),
      tableName,
      broadcast: logTable && queue ? { logTable, queueUrl: queue.url, sqs: cloud.clientConfig("sqs") } : undefined,
      txn: cloud.tables["txn"] ? { tableName: cloud.tables["txn"], sqs: cloud.clientConfig("sqs") } : undefined,
      coordination: cloud.tables["coordination"] ? { tableName: cloud.tables["coordination"] } : undefined,
      seed,
      durationMs,
      controlMs,
      ...(only ? { only: only as WorkloadName[] } : {}),
      onProgress: (message) => {
        // Phase changes always; operation counts at most every 5 s when not on a terminal.
        const now = performance.now();
        if (process.stderr.isTTY || !message.includes(" ops") || now - lastLog > 5000) {
          lastLog = now;
          log(message);
        }
      },
    });
    if (process.stderr.isTTY && !flags.json) process.stderr.write("\n");
    await writeFile(reportPath, renderHtml(report));
    if (flags.json) {
      const summary = {
        seed: report.seed,
        passed: report.passed,
        report: reportPath,
        workloads: [...report.workloads.map((w) => ({ w, attempts: 1 })), ...report.controls.map((c) => ({ w: c.result, attempts: c.attempts ?? 1 }))].map(({ w, attempts }) => ({
          name: w.name,
          control: w.control,
          attempts,
          outcomes: w.outcomes,
          faults: w.faults,
          verdicts: w.checks.map((c) => ({ model: c.model, verdict: c.verdict, operations: c.operations, ms: Math.round(c.ms), heapUsedAtStart: c.heap.atStart, heapUsedPeak: c.heap.peak })),
          anomalies: w.anomalies.map((a) => ({ kind: a.kind, key: a.key, detail: a.detail })),
        })),
      };
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    } else {
      process.stdout.write(`${formatTable(report)}\nReport: ${reportPath}\n`);
    }
    return report.passed ? 0 : 1;
  } finally {
    await cloud.stop();
  }
}

/** The lines of USAGE about one command: its entries and the options marked for it. */
function usageFor(command: string): string {
  const entries: string[][] = [];
  for (const line of USAGE.split("\n")) {
    if (/^  \S/.test(line)) entries.push([line]);
    else if (/^ {3,}\S/.test(line) && entries.length > 0) entries.at(-1)!.push(line);
    else entries.push([]);
  }
  const global = ["--json", "-h, --help", "-v, --version"];
  const about = entries.filter(([first = ""]) => first.trimStart().startsWith(`${command} `) || first.trim() === command);
  // An option is for the commands its parenthesized marks name: "(lock list, tx list)", "(kv, members, session)".
  const marked = (entry: string[]) => [...entry.join(" ").matchAll(/\(([a-z][a-z ,|-]*)\)/g)].some((m) => m[1]!.split(",").some((part) => part.trim().split(" ")[0] === command));
  const options = entries.filter((entry) => marked(entry) || global.some((g) => (entry[0] ?? "").trimStart().startsWith(g)));
  return [`usage: fencepost ${command} ...`, "", ...about.flat(), "", "options:", ...options.flat()].join("\n");
}

/** The package's version, from package.json beside the sources (tsx) or the build (dist/). */
function version(): string {
  for (const path of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "fencepost" && pkg.version) return pkg.version;
    } catch {
      // not there: try the next place
    }
  }
  return "unknown";
}

function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    // Node's parser says what was wrong (unknown option, missing or ambiguous value); a number
    // starting with '-' reads as an option: write it as --wait=-5 if you mean it.
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ".").replace(/\s*\n\s*/g, " "));
  }
}

/** The commands, each with its own --help. */
const COMMANDS: readonly string[] = ["up", "console", "verify", "lock", "tx", "stream", ...COORDINATION_COMMANDS];

const OPTIONS = {
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      seed: { type: "string" },
      duration: { type: "string" },
      control: { type: "string" },
      report: { type: "string" },
      only: { type: "string" },
      endpoint: { type: "string" },
      function: { type: "string" },
      owner: { type: "string" },
      token: { type: "string" },
      wait: { type: "string" },
      lease: { type: "string" },
      hold: { type: "boolean", default: false },
      follow: { type: "boolean", default: false },
      limit: { type: "string" },
      operator: { type: "string" },
      reason: { type: "string" },
      prefix: { type: "string" },
      all: { type: "boolean", default: false },
      "in-doubt": { type: "boolean", default: false },
      branches: { type: "string" },
      namespace: { type: "string" },
      from: { type: "string" },
      "if-revision": { type: "string" },
      "allow-actions": { type: "boolean", default: false },
      host: { type: "string" },
      port: { type: "string" },
      "log-table": { type: "string" },
      "no-console": { type: "boolean", default: false },
      version: { type: "boolean", short: "v", default: false },
} as const;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv);
  const [command] = positionals;
  if (values.version) {
    process.stdout.write(`${values.json ? JSON.stringify({ version: version() }) : version()}\n`);
    return 0;
  }
  if (values.help && command && COMMANDS.includes(command)) {
    process.stdout.write(`${usageFor(command)}\n`);
    return 0;
  }
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  switch (command) {
    case "up":
      await up({ json: values.json ?? false, console: !values["no-console"], host: values.host, port: values.port, operator: values.operator, "allow-actions": values["allow-actions"] ?? false });
      return 0;
    case "console": {
      const json = values.json ?? false;
      const { consoleCommand } = await import("./console-command.js");
      return consoleCommand({ ...values, json, "allow-actions": values["allow-actions"] ?? false }, (line) => process.stdout.write(`${line}\n`), (line) => process.stderr.write(`${line}\n`));
    }
    case "lock": {
      const json = values.json ?? false;
      return lockCommand(positionals[1], positionals[2], { ...values, json, hold: values.hold ?? false }, (line) => process.stdout.write(`${line}\n`), (line) => {
        if (!json) process.stderr.write(`${line}\n`);
      });
    }
    case "tx": {
      const json = values.json ?? false;
      return txCommand(positionals[1], positionals[2], { ...values, json, all: values.all ?? false, "in-doubt": values["in-doubt"] ?? false }, (line) => process.stdout.write(`${line}\n`), (line) => {
        if (!json) process.stderr.write(`${line}\n`);
      });
    }
    case "stream": {
      const json = values.json ?? false;
      return streamCommand(positionals[1], positionals[2], { ...values, json, follow: values.follow ?? false }, (line) => process.stdout.write(`${line}\n`), (line) => {
        if (!json) process.stderr.write(`${line}\n`);
      });
    }
    case "kv":
    case "members":
    case "session": {
      const json = values.json ?? false;
      return coordinationCommand(command as CoordinationCommand, positionals[1], positionals.slice(2), { ...values, json, all: values.all ?? false }, (line) => process.stdout.write(`${line}\n`), (line) => {
        if (!json) process.stderr.write(`${line}\n`);
      });
    }
    case "verify":
      return verify({ json: values.json ?? false, seed: values.seed, duration: values.duration, control: values.control, report: values.report, only: values.only });
    default:
      process.stderr.write(`fencepost: unknown command '${command}'\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const usage = err instanceof UsageError || err instanceof LockUsageError || err instanceof TxUsageError || err instanceof CoordinationUsageError || err instanceof StreamUsageError || (err instanceof Error && err.name === "ConsoleUsageError");
    // Our own errors already say what to do; anything else gets its stack for a bug report.
    const ours = usage || err instanceof FencepostError || err instanceof ConnectionError || err instanceof LocalCloudError;
    const message = err instanceof Error ? (ours ? err.message : (err.stack ?? err.message)) : String(err);
    const exitCode = usage ? 2 : 1;
    if (process.argv.includes("--json")) {
      const type = err instanceof Error ? err.name : "Error";
      process.stdout.write(`${JSON.stringify({ error: { type: usage ? "UsageError" : type, message: err instanceof Error ? err.message : String(err), exitCode } })}\n`);
    } else {
      const command = process.argv[2];
      const hint = usage ? `\nRun 'fencepost ${command && COMMANDS.includes(command) ? `${command} ` : ""}--help' for usage.` : "";
      process.stderr.write(`fencepost: ${message}${hint}\n`);
    }
    process.exit(exitCode);
  },
);
