/** Writing a benchmark's section into BENCHMARKS.md, replacing the previous run's. */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { RequestCounter } from "../lib/check/middleware.js";

const PATH = "BENCHMARKS.md";
const HEADER = "# Benchmarks\n\nMeasured, never asserted in tests. Each section names the command that produced it.\n\n";

/** Replaces the section headed `## title` (or appends it); `section` starts with that heading. */
export function writeSection(title: string, section: string): void {
  const current = existsSync(PATH) ? readFileSync(PATH, "utf8") : HEADER;
  const pattern = new RegExp(`## ${title}\\n[\\s\\S]*?(?=\\n## |$)`);
  const separator = current.endsWith("\n\n") ? "" : current.endsWith("\n") ? "\n" : "\n\n";
  writeFileSync(PATH, pattern.test(current) ? current.replace(pattern, section) : `${current}${separator}${section}`);
  process.stderr.write(`wrote ${PATH}\n`);
}

/** Prints a benchmark's section; with `write`, also replaces it in BENCHMARKS.md. `section` starts with `## title`. */
export function publishSection(title: string, section: string, options: { write: boolean }): void {
  process.stdout.write(`${section}\n`);
  if (options.write) writeSection(title, section);
}

/** The p-th percentile (0..100) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** `requests` by command, each divided by `per` (an operation count): "UpdateItem 2, GetItem 0.5". */
export function byCommand(requests: RequestCounter, per: number): string {
  return [...requests.byCommand].map(([command, n]) => `${command.replace("Command", "")} ${+(n / per).toFixed(2)}`).join(", ");
}
