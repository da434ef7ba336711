/**
 * The README's promise for the CLI: with `fencepost up` (npm start) running, `fencepost
 * lock acquire demo` in another process returns a token; inspect, release and list work;
 * the coordination commands (kv, members, session) read and write the local stack's
 * coordination service, and their watches print changes as they come until Ctrl-C;
 * errors exit non-zero with a message; stopping `up` removes its state file.
 */
import { spawn, spawnSync } from "node:child_process";
import { DeleteItemCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broadcast, Coordination, Coordinator, DynamoDbParticipant, branch } from "../../lib/index.js";
import { StreamLog } from "../../lib/ordering/log.js";
import { itemKeys } from "../../lib/coordination/store.js";

const stateFile = join(mkdtempSync(join(tmpdir(), "fencepost-cli-")), "local.json");
const env = { ...process.env, FENCEPOST_STATE_FILE: stateFile, AWS_ENDPOINT_URL: "" };
delete (env as Record<string, string | undefined>)["AWS_ENDPOINT_URL"];

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const out = spawnSync(process.execPath, ["--import", "tsx", "bin/fencepost.ts", ...args], { env, encoding: "utf8", timeout: 60_000 });
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

let up: ReturnType<typeof spawn>;
/** What `fencepost up --json` printed. */
let upSummary: { functions: Record<string, string>; tables: Record<string, string>; console?: string };

const until = async (check: () => boolean, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
};

/** A CLI command that runs until Ctrl-C: its stdout lines as they come, and a way to stop it. */
function background(...args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", "bin/fencepost.ts", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let partial = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    const text = partial + chunk.toString();
    const parts = text.split("\n");
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return {
    lines,
    stderr: () => stderr,
    /** Waits until `count` lines have been printed (or the command exits, which fails). */
    async waitFor(count: number, timeoutMs = 30_000): Promise<string[]> {
      const deadline = Date.now() + timeoutMs;
      while (lines.length < count) {
        if (child.exitCode !== null) throw new Error(`fencepost ${args.join(" ")} exited with ${child.exitCode}: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`fencepost ${args.join(" ")} printed ${lines.length} of ${count} lines: ${lines.join("\n")}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return lines;
    },
    /** Ctrl-C; resolves to the exit code. */
    async interrupt(): Promise<number | null> {
      child.kill("SIGINT");
      return exited;
    },
  };
}

/** A Coordination client on the local stack of `fencepost up`, as an application would use it. */
function coordination(namespace: string): Coordination {
  const state = JSON.parse(readFileSync(stateFile, "utf8")) as { region: string; endpoints: { dynamodb: string }; credentials: { accessKeyId: string; secretAccessKey: string } };
  const dynamodb = new DynamoDBClient({ endpoint: state.endpoints.dynamodb, region: state.region, credentials: state.credentials });
  return new Coordination({ tableName: upSummary.tables["coordination"]!, dynamodb, namespace });
}

beforeAll(async () => {
  up = spawn(process.execPath, ["--import", "tsx", "bin/fencepost.ts", "up", "--json"], { env, stdio: ["ignore", "pipe", "ignore"] });
  await new Promise<void>((ready, fail) => {
    let out = "";
    up.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) {
        upSummary = JSON.parse(out.slice(0, out.indexOf("\n"))) as typeof upSummary;
        ready();
      }
    });
    up.once("exit", (code) => fail(new Error(`fencepost up exited with ${code}`)));
  });
}, 120_000);

afterAll(async () => {
  if (up.exitCode === null) {
    up.kill("SIGINT");
    await new Promise((r) => up.once("exit", r));
  }
});

describe("fencepost CLI against `fencepost up`", () => {
  it("serves the console with up (read-only), and `fencepost console` finds the local stack", async () => {
    expect(upSummary.console).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const config = (await (await fetch(`${upSummary.console}api/config`)).json()) as unknown;
    expect(config).toMatchObject({ allowActions: false, configured: { locks: true, txn: true, coordination: true, log: true } });
    const served = background("console", "--port", "0", "--json");
    const { url, missing } = JSON.parse((await served.waitFor(1))[0]!) as { url: string; missing: string[] };
    expect(missing).toEqual([]);
    expect((await fetch(`${url}api/locks`)).status).toBe(200);
    expect((await fetch(`${url}api/actions/recover`, { method: "POST", headers: { "content-type": "application/json", "x-fencepost-console": "1" } })).status).toBe(403);
    expect(await served.interrupt()).toBe(0);
    expect(cli("console", "--port", "x").status).toBe(2);
  });

  it("acquires, inspects, lists and releases a lock", () => {
    const acquired = cli("lock", "acquire", "demo", "--json", "--owner", "ops");
    expect(acquired.status, acquired.stderr).toBe(0);
    const { fencingToken, heartbeating } = JSON.parse(acquired.stdout) as { fencingToken: number; heartbeating: boolean };
    expect(heartbeating).toBe(false); // no --hold: the lease runs out after the command
    expect(fencingToken).toBeGreaterThan(0);

    const inspected = cli("lock", "inspect", "demo");
    expect(inspected.stdout).toContain(`held by 'ops' with fencing token ${fencingToken}`);
    expect(cli("lock", "list").stdout).toMatch(/demo\s+held\s+ops/);

    const busy = cli("lock", "acquire", "demo", "--wait", "0.2", "--owner", "someone-else");
    expect(busy.status).toBe(1);
    expect(busy.stderr).toContain("was not granted");
    expect(busy.stderr).toContain("--wait"); // CLI terms, not the library's option names
    expect(busy.stderr).toContain("fencepost lock inspect demo");
    expect(busy.stderr).not.toContain("waitMs");
    expect(cli("lock", "list", "--limit", "0").status).toBe(2); // as tx list: a positive integer

    const wrongOwner = cli("lock", "release", "demo", "--token", String(fencingToken), "--owner", "someone-else");
    expect(wrongOwner.status).toBe(1);
    expect(wrongOwner.stderr).toContain("cannot release");

    expect(cli("lock", "release", "demo", "--token", String(fencingToken), "--owner", "ops").status).toBe(0);
    expect(cli("lock", "inspect", "demo").stdout).toContain("'demo' is free");
  });

  it("breaks a stuck holder's lock by its token, and nothing else", () => {
    const acquired = cli("lock", "acquire", "stuck", "--json", "--owner", "stuck-worker", "--lease", "600");
    expect(acquired.status, acquired.stderr).toBe(0);
    const { fencingToken } = JSON.parse(acquired.stdout) as { fencingToken: number };
    expect(cli("lock", "break", "stuck").status).toBe(2); // the token is required
    const stale = cli("lock", "break", "stuck", "--token", String(fencingToken - 1));
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain(`held with fencing token ${fencingToken}: nothing broken`);
    expect(cli("lock", "inspect", "stuck").stdout).toContain("held by 'stuck-worker'");
    const broken = cli("lock", "break", "stuck", "--token", String(fencingToken), "--json");
    expect(broken.status, broken.stderr).toBe(0);
    expect(JSON.parse(broken.stdout)).toEqual({ name: "stuck", broken: true, holder: "stuck-worker", fencingToken });
    expect(cli("lock", "inspect", "stuck").stdout).toContain("'stuck' is free");
    expect(cli("lock", "break", "stuck", "--token", String(fencingToken)).status).toBe(1); // already free
  });

  it("answers --version, per-command --help, and bad options in one line with exit code 2 (as JSON with --json)", () => {
    const version = cli("--version");
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const lockHelp = cli("lock", "--help");
    expect(lockHelp.status).toBe(0);
    expect(lockHelp.stdout).toContain("lock acquire NAME");
    expect(lockHelp.stdout).toContain("lock break NAME --token N");
    expect(lockHelp.stdout).not.toContain("tx recover");
    for (const args of [["--frob"], ["lock", "acquire", "x", "--wait", "-5"]]) {
      const bad = cli(...args);
      expect(bad.status, args.join(" ")).toBe(2);
      expect(bad.stderr, args.join(" ")).not.toMatch(/^\s+at /m); // no stack trace
      expect(bad.stderr.trim().split("\n"), args.join(" ")).toHaveLength(2); // the problem, then where help is
    }
    const asJson = cli("--json", "--frob");
    expect(asJson.status).toBe(2);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ error: { type: "UsageError", exitCode: 2 } });
  });

  it("explains usage errors with exit code 2", () => {
    const missing = cli("lock", "release", "demo");
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("needs --token");
    expect(cli("lock", "frobnicate").status).toBe(2);
    const badWorkload = cli("verify", "--only", "bank,nope");
    expect(badWorkload.status).toBe(2);
    expect(badWorkload.stderr).toContain("unknown workload 'nope'");
  });

  it("lists a transaction in doubt, shows it, aborts it with an audit entry, and recovers", async () => {
    const state = JSON.parse(readFileSync(stateFile, "utf8")) as { region: string; endpoints: { dynamodb: string }; credentials: { accessKeyId: string; secretAccessKey: string }; tables: Record<string, string> };
    const dynamodb = new DynamoDBClient({ endpoint: state.endpoints.dynamodb, region: state.region, credentials: state.credentials });
    const accounts = new DynamoDbParticipant({ tableName: state.tables["locks"]!, dynamodb });
    const dying = new Coordinator({ tableName: state.tables["txn"]!, dynamodb, fastPath: false, timeoutMs: 50 }, { crashAt: (p) => p === "decide" });
    const branches = [branch(accounts, [{ type: "put" as const, key: { pk: "cli-acct" }, item: { balance: 1 } }])];
    await expect(dying.run("cli-stuck", branches)).rejects.toThrow(/crashed/);
    await expect(dying.run("cli-stuck-2", branches.map((b) => ({ ...b, input: [{ type: "put" as const, key: { pk: "cli-acct-2" }, item: { balance: 1 } }] })))).rejects.toThrow(/crashed/);
    await new Promise((r) => setTimeout(r, 100));
    dynamodb.destroy();

    const listed = cli("tx", "list", "--in-doubt");
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout).toContain("cli-stuck: preparing, unfinished");
    expect(cli("tx", "show", "cli-stuck").stdout).toMatch(/participant dynamodb:/);
    expect(cli("tx", "abort", "cli-stuck").status).toBe(2); // --reason is required

    const aborted = cli("tx", "abort", "cli-stuck", "--reason", "stuck in test", "--operator", "ops");
    expect(aborted.status, aborted.stderr).toBe(0);
    expect(aborted.stdout).toContain("cli-stuck: aborted, done");
    expect(aborted.stdout).toMatch(/audit: .* ops abort: stuck in test/);

    const recovered = cli("tx", "recover", "--json");
    expect(recovered.status, recovered.stderr).toBe(0);
    // Recovered by this command, or already by the stack's scheduled recovery function (it runs every minute).
    const byCommand = (JSON.parse(recovered.stdout) as { transactions: { txId: string; action: string }[] }).transactions.some((t) => t.txId === "cli-stuck-2" && t.action === "aborted");
    expect(byCommand || cli("tx", "show", "cli-stuck-2").stdout.includes("cli-stuck-2: aborted, done")).toBe(true);
    expect(cli("tx", "show", "cli-stuck-2").stdout).toContain("cli-stuck-2: aborted, done");
    expect(cli("tx", "list").stdout).toContain("No transactions in doubt");
    expect(cli("tx", "show", "nope").status).toBe(1);
    // Running a transaction from the command line, branches inline.
    const branchesJson = JSON.stringify([{ participant: `dynamodb:${state.tables["locks"]}`, input: [{ type: "put", key: { pk: "cli-run-acct" }, item: { balance: 5 } }] }]);
    const ran = cli("tx", "run", "cli-run-1", "--branches", branchesJson, "--json");
    expect(ran.status, ran.stderr).toBe(0);
    expect(JSON.parse(ran.stdout)).toMatchObject({ txId: "cli-run-1", outcome: "committed" });
    expect(cli("tx", "run", "cli-run-2", "--branches", "not json").status).toBe(2);
    expect(cli("tx", "abort", "never-recorded", "--reason", "typo").status).not.toBe(0);
  });

  it("serves the coordination function and the session reaper", () => {
    expect(upSummary.functions).toMatchObject({ "coordination-function": expect.any(String), "coordination-reaper": expect.any(String) });
    expect(upSummary.tables).toMatchObject({ coordination: expect.any(String) });
  });

  it("puts, gets, lists and deletes keys with kv, each in its namespace", () => {
    const ns = `cli-kv-${Date.now().toString(36)}`;
    const put = cli("kv", "put", "config/a", '{"x":1}', "--namespace", ns);
    expect(put.status, put.stderr).toBe(0);
    expect(put.stdout).toContain("Put 'config/a' at revision 1.");
    expect(JSON.parse(cli("kv", "put", "greeting", "hello", "--namespace", ns, "--json").stdout)).toEqual({ key: "greeting", revision: 2 });
    expect(cli("kv", "get", "config/a", "--namespace", ns).stdout).toContain('config/a = {"x":1}  (revision 1, created at 1, version 1)');
    expect(JSON.parse(cli("kv", "get", "greeting", "--namespace", ns, "--json").stdout)).toMatchObject({ key: "greeting", value: "hello", revision: 2 });
    const stale = cli("kv", "put", "config/a", "2", "--if-revision", "5", "--namespace", ns);
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain("at revision 1, not at revision 5");
    const listed = cli("kv", "list", "--namespace", ns);
    expect(listed.stdout).toMatch(/config\/a\s+1\s+1\s+\{"x":1\}/);
    expect(listed.stdout).toMatch(/greeting\s+2\s+1\s+"hello"/);
    expect(listed.stdout).toContain("2 keys at revision 2.");
    expect(JSON.parse(cli("kv", "list", "config/", "--namespace", ns, "--json").stdout)).toMatchObject({ revision: 2, truncated: false, entries: [{ key: "config/a" }] });
    expect(cli("kv", "list", "--namespace", `${ns}-empty`).stdout).toContain("No keys");
    expect(cli("kv", "delete", "greeting", "--namespace", ns).stdout).toContain("Deleted 'greeting' at revision 3.");
    const absent = cli("kv", "get", "greeting", "--namespace", ns);
    expect(absent.status).toBe(1);
    expect(absent.stdout).toContain(`'greeting' does not exist in namespace '${ns}'.`);
    expect(cli("kv", "delete", "greeting", "--namespace", ns).status).toBe(1);
    expect(cli("kv", "get", "config/a").status).toBe(1); // another namespace: "default"
  }, 120_000);

  it("watches keys from a revision, printing changes as they come until Ctrl-C", async () => {
    const ns = `cli-watch-${Date.now().toString(36)}`;
    expect(cli("kv", "put", "w/1", "1", "--namespace", ns).status).toBe(0);
    expect(cli("kv", "put", "other", "0", "--namespace", ns).status).toBe(0);
    const json = background("kv", "watch", "w/", "--from", "1", "--namespace", ns, "--json");
    const text = background("kv", "watch", "--namespace", ns);
    await json.waitFor(1);
    await until(() => text.stderr().includes("Watching every key")); // it has read the revision it starts after
    expect(cli("kv", "put", "w/2", '{"n":2}', "--namespace", ns).status).toBe(0);
    expect(cli("kv", "delete", "w/1", "--namespace", ns).status).toBe(0);
    const events = (await json.waitFor(3)).map((line) => JSON.parse(line) as { type: string; key: string; revision: number });
    expect(events.map((e) => [e.type, e.key, e.revision])).toEqual([["put", "w/1", 1], ["put", "w/2", 3], ["delete", "w/1", 4]]);
    expect(await text.waitFor(1)).toContain('3 PUT w/2 = {"n":2}');
    await text.waitFor(2);
    expect(text.lines[1]).toBe("4 DELETE w/1");
    expect(await json.interrupt()).toBe(0);
    expect(await text.interrupt()).toBe(0);
    expect(text.stderr()).toContain(`Watching every key in namespace '${ns}' from revision 3`);

    // Changes no longer kept (as after the change log's retention): the watch says so and fails.
    const state = JSON.parse(readFileSync(stateFile, "utf8")) as { region: string; endpoints: { dynamodb: string }; credentials: { accessKeyId: string; secretAccessKey: string } };
    const dynamodb = new DynamoDBClient({ endpoint: state.endpoints.dynamodb, region: state.region, credentials: state.credentials });
    await dynamodb.send(new DeleteItemCommand({ TableName: upSummary.tables["coordination"]!, Key: itemKeys.change(ns, 1) }));
    dynamodb.destroy();
    const compacted = cli("kv", "watch", "--from", "1", "--namespace", ns);
    expect(compacted.status).toBe(1);
    expect(compacted.stderr).toContain("no longer keeps the changes after revision 0");
  }, 90_000);

  it("tails a stream, and follows it in sequence order, waiting at a number not written yet", async () => {
    const stream = `cli-stream-${Date.now().toString(36)}`;
    const state = JSON.parse(readFileSync(stateFile, "utf8")) as { region: string; endpoints: { dynamodb: string }; credentials: { accessKeyId: string; secretAccessKey: string } };
    const dynamodb = new DynamoDBClient({ endpoint: state.endpoints.dynamodb, region: state.region, credentials: state.credentials });
    const tableName = upSummary.tables["log"]!;
    const broadcast = new Broadcast({ tableName, dynamodb });
    for (const order of [1, 2, 3]) await broadcast.publish(stream, { order });
    const tail = cli("stream", "tail", stream, "--limit", "2");
    expect(tail.status, tail.stderr).toBe(0);
    expect(tail.stdout.trim().split("\n").map((line) => line.split("  ").slice(0, 2).join("  "))).toEqual(['#2  {"order":2}', '#3  {"order":3}']);
    const json = cli("stream", "tail", stream, "--json");
    expect(json.stdout.trim().split("\n").map((line) => (JSON.parse(line) as { seq: number }).seq)).toEqual([1, 2, 3]);
    expect(cli("stream", "tail").status).toBe(2);
    expect(cli("stream", "tail", stream, "--limit", "0").status).toBe(2);

    const follow = background("stream", "tail", stream, "--follow"); // as text: its progress lines say where it waits
    await follow.waitFor(3);
    await until(() => follow.stderr().includes("Following"));
    const log = new StreamLog(dynamodb, tableName);
    const hole = await log.allocate(stream, 1); // #4: a publisher that took its number and has not written it
    await broadcast.publish(stream, { order: 5 });
    await until(() => follow.stderr().includes(`Waiting for #${hole}`)); // it saw #5 and waits for #4, in order
    await log.fill(stream, hole); // as a consumer fills a hole after its timeout
    const lines = (await follow.waitFor(5)).map((line) => line.split("  ")[0] + (line.includes("no message") ? " (filled)" : ""));
    expect(lines).toEqual(["#1", "#2", "#3", "#4 (filled)", "#5"]);
    expect(await follow.interrupt()).toBe(0);
    dynamodb.destroy();
  }, 90_000);

  it("lists and watches a group's members, and lists sessions", async () => {
    const ns = `cli-members-${Date.now().toString(36)}`;
    const coord = coordination(ns);
    // The CLI runs by spawnSync, which blocks this process's keepalives while it runs: a ttl
    // far beyond a few CLI runs on a loaded machine keeps the sessions live throughout.
    const session = await coord.openSession({ ttlMs: 120_000 });
    await coord.group("workers").join(session, { meta: { address: "10.0.0.1:8080" } });
    const listed = cli("members", "list", "workers", "--namespace", ns);
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(`Group 'workers' (namespace '${ns}'): epoch 1, revision 1, 1 member`);
    expect(listed.stdout).toMatch(new RegExp(`${session.id}\\s+1\\s+\\{"address":"10.0.0.1:8080"\\}`));
    expect(JSON.parse(cli("members", "list", "workers", "--namespace", ns, "--json").stdout)).toMatchObject({ epoch: 1, members: [{ id: session.id, meta: { address: "10.0.0.1:8080" } }] });

    const sessions = cli("session", "list", "--namespace", ns);
    expect(sessions.stdout).toMatch(new RegExp(`${session.id}\\s+live\\s+120 s\\s+\\S+\\s+1\\s+`));
    expect(JSON.parse(cli("session", "list", "--namespace", ns, "--json").stdout)).toMatchObject([{ id: session.id, state: "live", ttlMs: 120_000 }]);

    const watch = background("members", "watch", "workers", "--namespace", ns, "--json");
    expect(JSON.parse((await watch.waitFor(1))[0]!)).toMatchObject({ epoch: 1, members: [{ id: session.id }], change: null });
    const second = await coord.openSession({ ttlMs: 120_000 });
    await coord.group("workers").join(second, { meta: { address: "10.0.0.2:8080" } });
    await session.close();
    const views = (await watch.waitFor(3)).slice(1).map((line) => JSON.parse(line) as { epoch: number; members: { id: string }[]; change: { type: string; member: string; cause: string } });
    expect(views.map((v) => [v.epoch, v.members.length, v.change.type, v.change.member])).toEqual([[2, 2, "joined", second.id], [3, 1, "left", session.id]]);
    expect(views[1]!.change.cause).toBe("session-closed");
    expect(await watch.interrupt()).toBe(0);

    expect(cli("session", "list", "--namespace", ns).stdout).not.toContain(session.id);
    expect(cli("session", "list", "--namespace", ns, "--all").stdout).toMatch(new RegExp(`${session.id}\\s+closed`));
    await second.close();
    expect(cli("session", "list", "--namespace", ns).stdout).toContain(`No live sessions in namespace '${ns}'.`);
  }, 90_000);

  it("answers coordination usage errors with exit code 2 and per-command help", () => {
    const help = cli("kv", "--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("kv watch [PREFIX]");
    expect(help.stdout).toContain("--from REV");
    expect(help.stdout).toContain("--namespace NS");
    expect(help.stdout).not.toContain("tx recover");
    expect(help.stdout).not.toContain("--all");
    expect(cli("members", "--help").stdout).toContain("members watch GROUP");
    expect(cli("session", "--help").stdout).toContain("--all");
    for (const args of [["kv", "put", "k"], ["kv", "get"], ["kv", "watch", "--from", "x"], ["kv", "list", "--limit", "0"], ["members", "list"], ["members", "frob", "g"], ["session", "open"], ["kv", "put", "k", "1", "--if-revision", "-1"]]) {
      const bad = cli(...args);
      expect(bad.status, args.join(" ")).toBe(2);
      expect(bad.stderr.trim().split("\n"), args.join(" ")).toHaveLength(2); // the problem, then where help is
      expect(bad.stderr, args.join(" ")).toContain(`Run 'fencepost ${args[0]} --help' for usage.`);
    }
  }, 120_000);

  it("removes its state file when stopped", async () => {
    expect(existsSync(stateFile)).toBe(true);
    up.kill("SIGINT");
    const code = await new Promise((r) => up.once("exit", r));
    expect(code).toBe(0);
    expect(existsSync(stateFile)).toBe(false);
    const gone = cli("lock", "inspect", "demo");
    expect(gone.status).toBe(1);
    expect(gone.stderr).toContain("no local stack is running");
  });
});
