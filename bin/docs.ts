/** Writes the generated documentation pages: `npm run docs`. */
import { writeFileSync } from "node:fs";
import { renderWireProtocol } from "../lib/service/wire.js";

const path = new URL("../docs/wire-protocol.md", import.meta.url);
writeFileSync(path, renderWireProtocol());
process.stdout.write(`wrote ${path.pathname}\n`);
