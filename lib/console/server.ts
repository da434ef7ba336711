/**
 * The operator console's HTTP server: a JSON API over ConsoleData, live updates as
 * server-sent events, and the page itself (lib/console/public: plain ES modules).
 *
 * Choices: Hono with @hono/node-server (small, maintained, no dependencies of its own)
 * routes the requests and writes the event streams; the page is Preact with htm, tagged
 * templates instead of JSX, so there is no build step and no bundle: the browser loads
 * `public/app.js` and the two libraries' own ESM files, served from node_modules through
 * an import map. Nothing comes from a CDN; the console works offline.
 *
 * Guarantees (safe by default):
 * - Bound to 127.0.0.1 unless told otherwise. Requests whose Host header is a name other
 *   than localhost, this machine's name or the address it was bound to are refused: a page
 *   on another site that rebinds its own name to this address still sends its name (DNS
 *   rebinding). IP literals are accepted (rebinding needs a name).
 * - Read-only unless started with `allowActions`: the POST endpoints answer 403 then.
 * - Every POST must carry the header `X-Fencepost-Console: 1` and JSON, and any Origin it
 *   has must be the console's own: a cross-site form or fetch cannot send it (CSRF). Input
 *   is validated; the action is the coordinator function's own (ConsoleData), so a refusal
 *   is its typed error, answered as `{ error: { type, message } }`.
 * - Live updates: `/api/events?topic=/api/...` reads that GET endpoint every `pollMs`
 *   (streams: `streamPollMs`) and sends its answer when it changed, with an increasing
 *   event id (the revision). Each open page costs one read of its data per interval.
 */
import { serve, type ServerType } from "@hono/node-server";
import { Hono, type Context } from "hono";
import { streamSSE } from "hono/streaming";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { isIP, type AddressInfo } from "node:net";
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { FencepostError, InvalidArgumentError } from "../errors.js";
import { ConsoleData, NotConfiguredError, type ConsoleSources } from "./sources.js";

/** How often a live page's data is read again. */
export const DEFAULT_POLL_MS = 1000;
/**
 * How often a live streams page is read again: listing streams scans the log table (it
 * has no index of streams), so it is not repeated every second.
 */
export const DEFAULT_STREAM_POLL_MS = 5000;
/** The header every POST must carry (a cross-site request cannot set it without a preflight the console never answers). */
export const ACTION_HEADER = "x-fencepost-console";
/** Longest `close()` waits for the server to report it closed. */
const CLOSE_WAIT_MS = 2000;
/** Longest reason an operator may give (the coordinator function's limit). */
const MAX_REASON = 2048;

export interface ConsoleOptions {
  readonly sources: ConsoleSources;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** 0: any free port. @default 0 */
  readonly port?: number;
  /** Serve the actions (recover, abort, forget). @default false: read-only */
  readonly allowActions?: boolean;
  /** Who acts, in the audit trail. */
  readonly operator: string;
  /** @default DEFAULT_POLL_MS */
  readonly pollMs?: number;
  /** How often the streams pages are read again (each read scans the log table). @default DEFAULT_STREAM_POLL_MS */
  readonly streamPollMs?: number;
  /** Shown in the page's header (the stack's region or endpoint). */
  readonly where?: string;
}

/** A running console. */
export interface RunningConsole {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The loopback names a console bound to loopback answers to. */
const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** Whether `host` is a loopback address or name. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const PUBLIC = fileURLToPath(new URL("./public/", import.meta.url));
const require = createRequire(import.meta.url);
/** The libraries the page imports, by the name its import map gives them. */
const VENDOR: Record<string, string> = {
  "preact.mjs": require.resolve("preact"),
  "hooks.mjs": require.resolve("preact/hooks"),
  "htm.mjs": require.resolve("htm").replace(/htm\.js$/, "htm.module.js"),
};
const TYPES: Record<string, string> = { html: "text/html; charset=utf-8", js: "text/javascript; charset=utf-8", mjs: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };

async function file(c: Context, path: string): Promise<Response> {
  const type = TYPES[path.split(".").pop() ?? ""] ?? "application/octet-stream";
  return c.body(await readFile(path), 200, { "content-type": type, "cache-control": "no-cache" });
}

/** An error as the API answers it, with the status that fits it. */
function failure(c: Context, err: unknown): Response {
  const error = err instanceof Error ? { type: err.name, message: err.message } : { type: "Error", message: String(err) };
  const status = err instanceof NotConfiguredError ? 503 : err instanceof InvalidArgumentError ? 400 : err instanceof FencepostError ? 409 : 502;
  return c.json({ error }, status);
}

/** The Hono app of a console (exposed for tests that call it without a socket). */
export function consoleApp(options: ConsoleOptions, boundHost = options.host ?? "127.0.0.1"): Hono {
  const data = new ConsoleData(options.sources);
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const streamPollMs = options.streamPollMs ?? DEFAULT_STREAM_POLL_MS;
  const app = new Hono();

  // DNS rebinding: a page on another site may resolve its own name to 127.0.0.1; its requests still name that site.
  app.use("*", async (c, next) => {
    const host = (c.req.header("host") ?? "").replace(/:\d+$/, "");
    if (!(isLoopback(host) || host === boundHost || isIP(host.replace(/^\[|\]$/g, "")) !== 0 || host === hostname())) return c.json({ error: { type: "ForbiddenHost", message: `this console answers to ${boundHost}, not '${host}'` } }, 403);
    await next();
    c.header("x-content-type-options", "nosniff");
    c.header("x-frame-options", "DENY");
  });

  app.get("/", (c) => file(c, `${PUBLIC}index.html`));
  app.get("/app.js", (c) => file(c, `${PUBLIC}app.js`));
  app.get("/style.css", (c) => file(c, `${PUBLIC}style.css`));
  app.get("/vendor/:name", (c) => {
    const path = VENDOR[(c.req.param("name") ?? "")];
    return path ? file(c, path) : c.notFound();
  });

  const read = (handler: (c: Context) => Promise<unknown>) => async (c: Context) => {
    try {
      return c.json(await handler(c));
    } catch (err) {
      return failure(c, err);
    }
  };
  app.get("/api/config", (c) => c.json({ allowActions: options.allowActions === true, configured: data.configured, operator: options.operator, where: options.where ?? "", pollMs }));
  app.get("/api/locks", read((c) => data.locks(c.req.query("prefix") ?? "")));
  app.get("/api/locks/:name{.+}", read((c) => data.lock((c.req.param("name") ?? ""))));
  app.get("/api/streams", read(() => data.streams()));
  app.get("/api/streams/:name{.+}", read(async (c) => (await data.stream((c.req.param("name") ?? ""))) ?? null));
  app.get("/api/transactions", read(() => data.transactions()));
  app.get("/api/transactions/:id{.+}", read(async (c) => (await data.transaction((c.req.param("id") ?? ""))) ?? null));
  app.get("/api/membership", read((c) => data.membership(c.req.query("namespace") || "default")));

  app.get("/api/events", (c) => {
    const asked = new URL(c.req.query("topic") ?? "", "http://console.invalid");
    const topic = `${asked.pathname}${asked.search}`;
    if (asked.host !== "console.invalid" || !topic.startsWith("/api/") || topic.startsWith("/api/events") || topic.startsWith("/api/actions")) return c.json({ error: { type: "InvalidArgumentError", message: "topic must be a GET endpoint under /api/" } }, 400);
    return streamSSE(c, async (stream) => {
      let last = "";
      let revision = 0;
      while (!stream.aborted) {
        const answer = await app.request(topic, { headers: { host: c.req.header("host") ?? "127.0.0.1" } });
        const raw = await answer.text();
        const body: unknown = answer.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(raw) : { error: { type: "NotFound", message: raw } };
        const text = JSON.stringify({ status: answer.status, body });
        if (text !== last) {
          last = text;
          await stream.writeSSE({ id: String(++revision), event: "snapshot", data: text });
        }
        await stream.sleep(topic.startsWith("/api/streams") ? streamPollMs : pollMs);
      }
    });
  });

  // Actions: read-only unless allowed; same-origin, custom header, JSON, validated.
  app.use("/api/actions/*", async (c, next) => {
    if (!options.allowActions) return c.json({ error: { type: "ReadOnlyConsole", message: "this console is read-only: start it with --allow-actions to recover, abort or forget transactions" } }, 403);
    const origin = c.req.header("origin");
    const self = new URL(c.req.url).origin;
    if (c.req.header(ACTION_HEADER) !== "1" || (origin !== undefined && origin !== self) || !(c.req.header("content-type") ?? "").startsWith("application/json")) {
      return c.json({ error: { type: "CrossSiteRequest", message: `actions need the ${ACTION_HEADER} header, a JSON body and this console's own origin` } }, 403);
    }
    await next();
  });
  app.post("/api/actions/recover", async (c) => {
    try {
      return c.json(await data.recover());
    } catch (err) {
      return failure(c, err);
    }
  });
  app.post("/api/actions/:action{abort|forget}", async (c) => {
    try {
      const body = (await c.req.json().catch(() => undefined)) as { txId?: unknown; reason?: unknown } | undefined;
      const txId = body?.txId;
      const reason = body?.reason;
      if (typeof txId !== "string" || txId === "" || txId.length > 512) throw new InvalidArgumentError("txId", "must be a transaction id (1 to 512 characters)");
      if (typeof reason !== "string" || reason.trim() === "" || reason.length > MAX_REASON) throw new InvalidArgumentError("reason", `must say why, in 1 to ${MAX_REASON} characters (it goes in the audit trail)`);
      return c.json(await data.override(txId, c.req.param("action") as "abort" | "forget", options.operator, reason.trim()));
    } catch (err) {
      return failure(c, err);
    }
  });
  return app;
}

/** Starts a console; resolves once it listens. */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const host = options.host ?? "127.0.0.1";
  const app = consoleApp(options, host);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: options.port ?? 0, hostname: host, overrideGlobalObjects: false }, () => resolve(s));
    s.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  const shown = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  return {
    url: `http://${shown}:${port}/`,
    host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        // Live pages hold event streams open: end them rather than wait for the browsers,
        // and never wait more than CLOSE_WAIT_MS for the server to say it closed.
        const giveUp = setTimeout(resolve, CLOSE_WAIT_MS);
        server.close(() => {
          clearTimeout(giveUp);
          resolve();
        });
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}
