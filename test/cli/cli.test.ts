/**
 * The README's promise for the CLI: with `fencepost up` (npm start) running, `fencepost
 * lock acquire demo` in another process returns a token; inspect, release and list work;
 * errors exit non-zero with a message; stopping `up` removes its state file.
 */
import { spawn, spawnSync } from "node:child_process";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Coordinator, DynamoDbParticipant, branch } from "../../lib/index.js";

const stateFile = join(mkdtempSync(join(tmpdir(), "fencepost-cli-")), "local.json");
const env = { ...process.env, FENCEPOST_STATE_FILE: stateFile, AWS_ENDPOINT_URL: "" };
delete (env as Record<string, string | undefined>)["AWS_ENDPOINT_URL"];

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const out = spawnSync(process.execPath, ["--import", "tsx", "bin/fencepost.ts", ...args], { env, encoding: "utf8", timeout: 60_000 });
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

let up: ReturnType<typeof spawn>;

beforeAll(async () => {
  up = spawn(process.execPath, ["--import", "tsx", "bin/fencepost.ts", "up", "--json"], { env, stdio: ["ignore", "pipe", "ignore"] });
  await new Promise<void>((ready, fail) => {
    let out = "";
    up.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) ready();
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

  it("answers --version, per-command --help, and bad options in one line with exit code 2 (as JSON with --json)", () => {
    const version = cli("--version");
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const lockHelp = cli("lock", "--help");
    expect(lockHelp.status).toBe(0);
    expect(lockHelp.stdout).toContain("lock acquire NAME");
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
  });

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
