/**
 * The README's promise for the CLI: with `fencepost up` (npm start) running, `fencepost
 * lock acquire demo` in another process returns a token; inspect, release and list work;
 * errors exit non-zero with a message; stopping `up` removes its state file.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

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
    const { fencingToken } = JSON.parse(acquired.stdout) as { fencingToken: number };
    expect(fencingToken).toBeGreaterThan(0);

    const inspected = cli("lock", "inspect", "demo");
    expect(inspected.stdout).toContain(`held by 'ops' with fencing token ${fencingToken}`);
    expect(cli("lock", "list").stdout).toMatch(/demo\s+held\s+ops/);

    const busy = cli("lock", "acquire", "demo", "--wait", "0.2", "--owner", "someone-else");
    expect(busy.status).toBe(1);
    expect(busy.stderr).toContain("was not granted");

    const wrongOwner = cli("lock", "release", "demo", "--token", String(fencingToken), "--owner", "someone-else");
    expect(wrongOwner.status).toBe(1);
    expect(wrongOwner.stderr).toContain("cannot release");

    expect(cli("lock", "release", "demo", "--token", String(fencingToken), "--owner", "ops").status).toBe(0);
    expect(cli("lock", "inspect", "demo").stdout).toContain("'demo' is free");
  });

  it("explains usage errors with exit code 2", () => {
    const missing = cli("lock", "release", "demo");
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("needs --token");
    expect(cli("lock", "frobnicate").status).toBe(2);
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
