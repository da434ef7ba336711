/**
 * `fencepost tx list|show|run|recover|abort|forget`: operators' view of two-phase commit,
 * through the coordinator function (so it needs only lambda:InvokeFunction, and phase
 * two runs with the function's access to the participants).
 */
import { readFile } from "node:fs/promises";
import { hostname, userInfo } from "node:os";
import { invokeJson } from "../lib/internal/lambda.js";
import type { TxnRequest, TxnResponses } from "../lib/service/txn-api.js";
import type { TransactionRecord } from "../lib/txn/log.js";
import { txnService } from "./connection.js";

export interface TxFlags {
  json: boolean;
  endpoint?: string;
  function?: string;
  operator?: string;
  reason?: string;
  limit?: string;
  prefix?: string;
  all: boolean;
  "in-doubt": boolean;
  branches?: string;
}

export class TxUsageError extends Error {}

const age = (ms: number) => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : ms < 7_200_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 3_600_000)} h`);

function describeRecord(r: TransactionRecord): string {
  const now = Date.now();
  const lines = [
    `${r.txId}: ${r.status}${r.done ? ", done" : ", unfinished"} (${r.path}), created ${new Date(r.createdAt).toISOString()}` +
      (r.status === "preparing" ? `, deadline ${now > r.deadline ? `passed ${age(now - r.deadline)} ago` : `in ${age(r.deadline - now)}`}` : ""),
    ...(r.reason ? [`  reason: ${r.reason}`] : []),
    ...r.branches.map((b) => `  participant ${b.participant}`),
    ...r.audit.map((a) => `  audit: ${new Date(a.at).toISOString()} ${a.operator} ${a.action}: ${a.reason}`),
  ];
  return lines.join("\n");
}

export async function txCommand(sub: string | undefined, txId: string | undefined, flags: TxFlags, out: (line: string) => void, progress: (line: string) => void): Promise<number> {
  const svc = txnService(flags);
  const call = async <R extends TxnRequest>(request: R) => (await invokeJson(svc.lambda, svc.functionName, request)) as TxnResponses[R["action"]];
  const needId = () => {
    if (!txId) throw new TxUsageError(`fencepost tx ${sub} needs a transaction id`);
    return txId;
  };
  const operator = flags.operator ?? `${userInfo().username}@${hostname()}`;
  switch (sub) {
    case "list": {
      const limit = flags.limit === undefined ? undefined : Number(flags.limit);
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new TxUsageError(`--limit must be a positive integer, got '${flags.limit}'`);
      const { transactions } = await call({ action: "list", ...(flags.all ? { all: true } : {}), ...(limit ? { limit } : {}), ...(flags.prefix ? { prefix: flags.prefix } : {}) });
      if (flags.json) out(JSON.stringify(transactions));
      else if (transactions.length === 0) out(flags.all ? "No unfinished transactions." : "No transactions in doubt (none unfinished past its deadline).");
      else for (const r of transactions) out(describeRecord(r));
      return 0;
    }
    case "show": {
      const record = await call({ action: "status", txId: needId() });
      if (flags.json) out(JSON.stringify(record));
      else out(record ? describeRecord(record) : `No record of '${txId}': it never began, or finished longer ago than the retention period (presumed aborted).`);
      return record ? 0 : 1;
    }
    case "run": {
      const id = needId();
      if (!flags.branches) throw new TxUsageError(`fencepost tx run needs --branches JSON (or --branches @file.json)`);
      const text = flags.branches.startsWith("@") ? await readFile(flags.branches.slice(1), "utf8").catch(() => { throw new TxUsageError(`cannot read ${flags.branches!.slice(1)}`); }) : flags.branches;
      let branches: { participant: string; input: unknown }[];
      try {
        branches = JSON.parse(text) as typeof branches;
      } catch {
        throw new TxUsageError(`--branches is not JSON: give [{"participant":"dynamodb:<table>","input":[...]}]`);
      }
      progress(`Running '${id}' through the coordinator (${svc.where})...`);
      const result = await call({ action: "run", txId: id, branches });
      if (flags.json) out(JSON.stringify(result));
      else out(`${id}: ${result.outcome} (${result.path}${result.duplicate ? ", an earlier run's outcome" : ""})${result.reason ? `: ${result.reason}` : ""}${result.acknowledged ? "" : `; recovery finishes phase two for ${result.pending.join(", ")}`}`);
      return result.outcome === "committed" ? 0 : 1;
    }
    case "recover": {
      progress(`Recovering transactions past their deadline (${svc.where})...`);
      // One call does the work; say that it is still going while it does.
      const started = Date.now();
      const ticking = setInterval(() => progress(`  still recovering (${Math.round((Date.now() - started) / 1000)} s)...`), 5000);
      const report = await call({ action: "recover", ...(flags.prefix ? { prefix: flags.prefix } : {}) }).finally(() => clearInterval(ticking));
      if (flags.json) out(JSON.stringify(report));
      else {
        out(`Examined ${report.examined}: aborted ${report.aborted} undecided, re-drove ${report.redriven} decided; ${report.completed} finished, ${report.stillInDoubt} still in doubt.`);
        for (const t of report.transactions.filter((x) => x.pending.length > 0)) out(`  ${t.txId} (${t.decision}) waits for ${t.pending.join(", ")}${t.error ? `: ${t.error}` : ""}`);
      }
      return report.stillInDoubt === 0 ? 0 : 1;
    }
    case "abort":
    case "forget": {
      const id = needId();
      if (!flags.reason) throw new TxUsageError(`fencepost tx ${sub} needs --reason (it goes in the audit trail)`);
      const record = await call({ action: "override", txId: id, override: sub, operator, reason: flags.reason });
      if (flags.json) out(JSON.stringify(record));
      else out(describeRecord(record));
      return 0;
    }
    default:
      throw new TxUsageError(`unknown tx command '${sub ?? ""}': use list, show, run, recover, abort or forget`);
  }
}
