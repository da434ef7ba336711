/**
 * The console's server without a browser or a stack: it serves the page and its libraries
 * from the package, answers a part it was not given with 503 NotConfiguredError, refuses
 * a Host that names another site (DNS rebinding) and event topics outside its GET API; and
 * its token history keeps each lock's tokens, newest first, once each.
 */
import { describe, expect, it } from "vitest";
import { consoleApp } from "../../lib/console/index.js";
import { TokenHistory } from "../../lib/console/history.js";

const app = consoleApp({ sources: {}, operator: "test" });
const get = (path: string, host = "127.0.0.1:8420") => app.request(path, { headers: { host } });

describe("console server", () => {
  it("serves the page and its libraries from the package, with no CDN", async () => {
    const page = await (await get("/")).text();
    expect(page).toContain('"preact": "/vendor/preact.mjs"');
    expect(page).not.toMatch(/https?:\/\//);
    for (const path of ["/app.js", "/style.css", "/vendor/preact.mjs", "/vendor/hooks.mjs", "/vendor/htm.mjs"]) expect((await get(path)).status, path).toBe(200);
    expect((await get("/vendor/other.mjs")).status).toBe(404);
  });

  it("answers a part it was not given with 503 and what to set", async () => {
    const answer = await get("/api/locks");
    expect(answer.status).toBe(503);
    expect(await answer.json()).toMatchObject({ error: { type: "NotConfiguredError", message: expect.stringContaining("FENCEPOST_LOCK_FUNCTION") } });
  });

  it("refuses a Host naming another site, accepts loopback names and IP addresses", async () => {
    expect((await get("/api/config", "attacker.example:8420")).status).toBe(403);
    for (const host of ["localhost:8420", "127.0.0.1", "[::1]:8420", "10.1.2.3:8420"]) expect((await get("/api/config", host)).status, host).toBe(200);
  });

  it("streams events only for its own GET endpoints", async () => {
    for (const topic of ["/app.js", "/api/events?topic=/api/locks", "/api/actions/recover", "http://elsewhere.example/api/locks", "/api/../app.js"]) {
      expect((await get(`/api/events?topic=${encodeURIComponent(topic)}`)).status, topic).toBe(400);
    }
  });

  it("keeps each lock's tokens once, newest first, with the holder first seen", () => {
    const history = new TokenHistory();
    history.saw("a", { fencingToken: 1, holder: "x" });
    history.saw("a", { fencingToken: 1, holder: "x" });
    history.saw("a", { fencingToken: 1, holder: undefined }); // released: the same grant
    history.saw("a", { fencingToken: 2, holder: "y" });
    expect(history.of("a").map((s) => [s.fencingToken, s.holder])).toEqual([[2, "y"], [1, "x"]]);
    expect(history.of("b")).toEqual([]);
  });
});
