/**
 * The browser of the console's tests and screenshots: Debian's Chromium (the `chromium`
 * package; .ci/run installs it) driven by playwright-core, which never downloads one.
 * Missing, it is an error that says how to install it, never a silent skip.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** Where Debian's chromium package puts the browser (FENCEPOST_CHROMIUM overrides). */
export const CHROMIUM = process.env["FENCEPOST_CHROMIUM"] ?? "/usr/bin/chromium";

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Launches Chromium headless with a fresh profile (playwright's own temporary --user-data-dir). */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`the console's browser tests need Chromium at ${CHROMIUM}: install it with 'apt-get install -y --no-install-recommends chromium' (.ci/run does), or set FENCEPOST_CHROMIUM`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}
