/**
 * Presenting a verification run: a plain-text table for the terminal and a
 * self-contained HTML report with, per lock, a timeline of holders, pauses and fenced
 * writes (accepted, rejected as stale, or unknown). Each checked workload's verdict line
 * carries the checker's wall time and heap figures (see `CheckResult.heap`).
 */
import type { FaultCounts } from "./faults.js";
import type { Operation } from "./history.js";
import { describe } from "./invariants.js";
import type { VerificationReport } from "./verify.js";
import type { Pause, WorkloadResult } from "./workloads/workers.js";

const FAULT_LABELS: [keyof FaultCounts, string][] = [
  ["lose-request", "lost req"],
  ["lose-response", "lost resp"],
  ["throttle", "throttle"],
  ["server-error", "5xx"],
  ["delay", "slow"],
  ["late-delivery", "late"],
  ["pause", "pause"],
  ["duplicate-run", "dup runs"],
  ["sigkill", "SIGKILL"],
];

function faultsText(f: FaultCounts): string {
  return FAULT_LABELS.filter(([k]) => f[k] > 0 || !["duplicate-run", "sigkill"].includes(k)).map(([k, label]) => `${label} ${f[k]}`).join(", ");
}

function anomaliesText(w: WorkloadResult): string {
  if (w.anomalies.length === 0) return "none";
  const byKind = new Map<string, number>();
  for (const a of w.anomalies) byKind.set(a.kind, (byKind.get(a.kind) ?? 0) + 1);
  return [...byKind].map(([k, n]) => `${k} ${n}`).join(", ");
}

/** Bytes as mebibytes, for the checker's memory figures. */
const megabytes = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MB`;

function verdictText(w: WorkloadResult): string {
  if (w.checks.length === 0) return "n/a (invariants only)";
  return w.checks
    .map((c) => `${c.verdict} (${c.operations} ops, ${c.ms.toFixed(0)} ms, heap peak ${megabytes(c.heap.peak)}, +${megabytes(Math.max(0, c.heap.peak - c.heap.atStart))} during the check)`)
    .join("; ");
}

interface Row {
  workload: string;
  operations: string;
  stats: string;
  faults: string;
  verdict: string;
  anomalies: string;
  result: string;
}

function rows(report: VerificationReport): Row[] {
  const row = (w: WorkloadResult, result: string): Row => ({
    workload: w.name,
    operations: `${w.outcomes.ok}/${w.outcomes.fail}/${w.outcomes.info}`,
    stats: Object.entries(w.stats).map(([k, n]) => `${k} ${n}`).join(", "),
    faults: faultsText(w.faults),
    verdict: verdictText(w),
    anomalies: anomaliesText(w),
    result,
  });
  return [
    ...report.workloads.map((w) => row(w, w.anomalies.length === 0 ? "PASS" : "FAIL")),
    ...report.controls.map((c) => row(c.result, c.caught ? (c.attempts === 2 ? "caught on its second, longer run (PASS)" : "caught (PASS)") : "NOT CAUGHT (FAIL)")),
  ];
}

const HEADERS: Row = { workload: "workload", operations: "ok/fail/info", stats: "figures", faults: "faults injected", verdict: "checker verdict", anomalies: "anomalies", result: "result" };

/** The run as plain text: a small table per workload, then the verdict. */
export function formatTable(report: VerificationReport): string {
  const out = [`seed ${report.seed}   run ${report.runId}   ${(report.durationMs / 1000).toFixed(0)} s`, ""];
  const labels = (Object.keys(HEADERS) as (keyof Row)[]).filter((k) => k !== "workload" && k !== "result");
  const width = Math.max(...labels.map((k) => HEADERS[k].length));
  for (const r of rows(report)) {
    out.push(`${r.workload}: ${r.result}`);
    for (const k of labels) out.push(`  ${HEADERS[k].padEnd(width)}  ${r[k] || "-"}`);
    out.push("");
  }
  out.push(report.passed ? "PASSED: zero anomalies, every negative control caught." : "FAILED: see the anomalies below and the HTML report.");
  for (const w of report.workloads) {
    for (const a of w.anomalies.slice(0, 5)) out.push(`  ${w.name}: ${a.kind} on ${a.key}: ${a.detail}`);
  }
  return out.join("\n");
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** One lock's timeline as SVG: a row per worker, holds as bars, pauses hatched, writes as dots. */
function timeline(w: WorkloadResult, key: string, t0: number): string {
  const ops = w.history.filter((op) => op.key === key);
  const processes = [...new Set(ops.map((op) => op.process))].sort();
  const end = Math.max(...ops.map((op) => (Number.isFinite(op.completedAt) ? op.completedAt : op.invokedAt))) - t0;
  const scale = 0.05; // px per ms
  const rowH = 28;
  const left = 50;
  const width = left + end * scale + 20;
  const height = processes.length * rowH + 30;
  const x = (t: number) => (left + (t - t0) * scale).toFixed(1);
  const y = (p: string) => processes.indexOf(p) * rowH + 20;
  const ends = new Map(ops.filter((op) => op.f === "leaseEnd").map((op) => [(op.input as { token: number }).token, op.invokedAt]));
  const parts: string[] = [];
  for (const p of processes) parts.push(`<text x="4" y="${y(p) + 14}" class="label">${escape(p)}</text>`);
  for (let s = 0; s <= end / 1000; s += 5) parts.push(`<line x1="${x(t0 + s * 1000)}" y1="10" x2="${x(t0 + s * 1000)}" y2="${height}" class="grid"/><text x="${x(t0 + s * 1000)}" y="10" class="tick">${s}s</text>`);
  for (const pause of w.pauses.filter((p: Pause) => p.key === key)) {
    parts.push(`<rect x="${x(pause.from)}" y="${y(pause.process) - 2}" width="${((pause.to - pause.from) * scale).toFixed(1)}" height="${rowH - 6}" class="pause"><title>${escape(pause.process)} paused ${(pause.to - pause.from).toFixed(0)} ms</title></rect>`);
  }
  for (const op of ops) {
    const token = op.outcome === "ok" ? (op.output as { token?: number } | null)?.token : undefined;
    if (op.f === "acquire" && token !== undefined) {
      const until = ends.get(token) ?? op.completedAt;
      const hue = (token * 67) % 360;
      parts.push(
        `<rect x="${x(op.completedAt)}" y="${y(op.process)}" width="${Math.max(1, (until - op.completedAt) * scale).toFixed(1)}" height="${rowH - 10}" fill="hsl(${hue} 60% 75%)"><title>${escape(op.process)} holds token ${token}, ${(until - op.completedAt).toFixed(0)} ms</title></rect>`,
        `<text x="${x(op.completedAt)}" y="${y(op.process) + 12}" class="token">${token}</text>`,
      );
    }
    if (op.f === "write") {
      const cls = op.outcome === "info" ? "unknown" : op.output === "ok" ? "accepted" : "stale";
      parts.push(`<circle cx="${x(op.invokedAt)}" cy="${y(op.process) + rowH - 8}" r="3.5" class="${cls}"><title>${escape(describe(op))}</title></circle>`);
    }
  }
  return `<h3>${escape(key)}</h3><div class="scroll"><svg width="${width.toFixed(0)}" height="${height}">${parts.join("")}</svg></div>`;
}

function anomalyList(w: WorkloadResult): string {
  if (w.anomalies.length === 0) return "<p>No anomalies.</p>";
  const items = w.anomalies.slice(0, 50).map((a) => `<li><b>${escape(a.kind)}</b> on ${escape(a.key)}: ${escape(a.detail)}<ul>${a.operations.map((op: Operation) => `<li><code>${escape(describe(op))}</code></li>`).join("")}</ul></li>`);
  return `<ul>${items.join("")}</ul>${w.anomalies.length > 50 ? `<p>and ${w.anomalies.length - 50} more</p>` : ""}`;
}

/** The run as a self-contained HTML page. */
export function renderHtml(report: VerificationReport): string {
  const table = rows(report)
    .map((r) => `<tr>${Object.values(r).map((v) => `<td>${escape(v)}</td>`).join("")}</tr>`)
    .join("");
  const sections = [...report.workloads, ...report.controls.map((c) => c.result)].map((w) => {
    const t0 = Math.min(...w.history.map((op) => op.invokedAt));
    const locks = [...new Set(w.history.filter((op) => op.f === "acquire").map((op) => op.key))].map((k) => timeline(w, k, t0)).join("");
    return `<section><h2>${escape(w.name)}${w.control ? " (negative control)" : ""}</h2>${anomalyList(w)}${locks}</section>`;
  });
  return `<!doctype html><html><head><meta charset="utf-8"><title>Fencepost verification, seed ${report.seed}</title><style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.scroll{overflow-x:auto;border:1px solid #eee}.label,.tick,.token{font:11px monospace}.grid{stroke:#eee}.pause{fill:#f5d76e;opacity:.6}
.accepted{fill:#2a9d3a}.stale{fill:#d62828}.unknown{fill:#999}.legend span{margin-right:1.5em}
</style></head><body><h1>Fencepost verification</h1>
<p>Seed <b>${report.seed}</b>, run ${escape(report.runId)}, ${(report.durationMs / 1000).toFixed(0)} s. <b>${report.passed ? "PASSED" : "FAILED"}</b>. Replay with <code>npm run verify -- --seed ${report.seed}</code>.</p>
<table><tr>${Object.values(HEADERS).map((h) => `<th>${escape(h)}</th>`).join("")}</tr>${table}</table>
<p class="legend">Timelines: bars are holds (from grant to the end of the holder's belief), labelled with the fencing token; <span style="background:#f5d76e">yellow</span> is a stop-the-world pause; dots are fenced writes: <span style="color:#2a9d3a">● accepted</span><span style="color:#d62828">● rejected as stale</span><span style="color:#999">● outcome unknown</span>. Hover for details.</p>
${sections.join("")}</body></html>`;
}
