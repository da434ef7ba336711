/** Starts a local cloud, prints its endpoints as one JSON line, and waits to be killed. */
import { synthesizeTemplate } from "../../infra/synth.js";
import { startLocalCloud } from "../../lib/local/index.js";

const cloud = await startLocalCloud({ template: synthesizeTemplate() });
process.stdout.write(`${JSON.stringify(cloud.endpoints)}\n`);
setInterval(() => undefined, 60_000);
