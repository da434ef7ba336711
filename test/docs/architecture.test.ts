/**
 * The layering rules of DESIGN.md §6, checked on the import graph of lib/ (type-only
 * imports count): no file-level cycle; the core (lib/locks, lib/ordering, lib/txn) never
 * imports the service layer, the local cloud or the harness; families do not reach into
 * each other's clients; lib/errors.ts and lib/internal sit below everything; and lib/
 * throws only typed errors. Each rule has a negative control on a made-up graph.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

type Graph = Map<string, string[]>;

const root = resolve(import.meta.dirname, "../..");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(path) : entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** lib/'s files and the lib/ files each imports (relative imports only; `import type` included). */
function importGraph(): Graph {
  const graph: Graph = new Map();
  for (const file of sourceFiles(join(root, "lib"))) {
    const imported = ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles.map((i) => i.fileName);
    const local = imported.filter((name) => name.startsWith(".")).map((name) => relative(root, resolve(dirname(file), name.replace(/\.js$/, ".ts"))));
    graph.set(relative(root, file), local);
  }
  return graph;
}

/** Strongly connected components with more than one file (Tarjan): each is an import cycle. */
function cycles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const CORE = /^lib\/(locks|ordering|txn|coordination)\//;
const BESIDE_CORE = /^lib\/(service|local|check)\//;
const SHARED = /^lib\/(errors\.ts|internal\/)/;

/** Imports that break the layering: [from, to, rule]. */
function layeringViolations(graph: Graph): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (const [from, deps] of graph) {
    for (const to of deps) {
      if (CORE.test(from) && BESIDE_CORE.test(to)) out.push([from, to, "the core never imports lib/service, lib/local or lib/check"]);
      if (SHARED.test(from) && !SHARED.test(to)) out.push([from, to, "lib/errors.ts and lib/internal import nothing above them"]);
      const family = (path: string) => /^lib\/(locks|ordering|txn|coordination)\//.exec(path)?.[1];
      if (family(from) && family(to) && family(from) !== family(to) && /\/(client|index)\.ts$/.test(to)) {
        out.push([from, to, "a family does not import another family's client or index"]);
      }
    }
  }
  return out;
}

describe("architecture of lib/", () => {
  const graph = importGraph();

  it("has no import cycle between files", () => {
    expect(graph.size).toBeGreaterThan(40);
    expect(cycles(graph)).toEqual([]);
  });

  it("keeps the layers apart", () => {
    expect(layeringViolations(graph)).toEqual([]);
  });

  it("throws only typed errors (no bare Error, TypeError or RangeError)", () => {
    const untyped = sourceFiles(join(root, "lib")).flatMap((file) =>
      readFileSync(file, "utf8")
        .split("\n")
        .flatMap((line, i) => (/throw new (Error|TypeError|RangeError)\(/.test(line) ? [`${relative(root, file)}:${i + 1}`] : [])),
    );
    expect(untyped).toEqual([]);
  });

  it("negative controls: each check catches a made-up violation", () => {
    const cyclic: Graph = new Map([
      ["lib/locks/a.ts", ["lib/locks/b.ts"]],
      ["lib/locks/b.ts", ["lib/locks/c.ts"]],
      ["lib/locks/c.ts", ["lib/locks/a.ts"]],
    ]);
    expect(cycles(cyclic)).toEqual([["lib/locks/a.ts", "lib/locks/b.ts", "lib/locks/c.ts"]]);
    const layered: Graph = new Map([
      ["lib/locks/remote.ts", ["lib/service/lock-api.ts"]],
      ["lib/internal/time.ts", ["lib/locks/clock.ts"]],
      ["lib/txn/outbox.ts", ["lib/locks/client.ts"]],
      ["lib/service/lock-api.ts", []],
      ["lib/locks/clock.ts", []],
      ["lib/locks/client.ts", []],
    ]);
    expect(layeringViolations(layered).map(([from]) => from)).toEqual(["lib/locks/remote.ts", "lib/internal/time.ts", "lib/txn/outbox.ts"]);
  });
});
