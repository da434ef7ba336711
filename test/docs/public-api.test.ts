/**
 * The root entry point exports exactly what README's "Public API" section lists (values
 * and types alike, read with the TypeScript compiler), so the documented API and the
 * package cannot drift apart. Negative control: a name missing from either side is found.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");

function exportsOf(file: string): string[] {
  const program = ts.createProgram([file], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, noEmit: true });
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
  return checker.getExportsOfModule(module).map((symbol) => symbol.name).sort();
}

/** The backticked identifiers of README's "Public API" section, up to its paragraph on the other entry points. */
function documented(readme: string): string[] {
  const section = readme.slice(readme.indexOf("## Public API"), readme.indexOf("The other entry points"));
  return [...new Set([...section.matchAll(/`([A-Za-z_][A-Za-z0-9_]*)`/g)].map((m) => m[1]!))].filter((name) => name !== "fencepost").sort();
}

/** Names on one side only. */
function drift(exported: string[], listed: string[]): { undocumented: string[]; missing: string[] } {
  return { undocumented: exported.filter((n) => !listed.includes(n)), missing: listed.filter((n) => !exported.includes(n)) };
}

describe("public API", () => {
  it("README's Public API section lists exactly the root exports", () => {
    const exported = exportsOf(resolve(root, "lib/index.ts"));
    expect(exported.length).toBeGreaterThan(50);
    expect(drift(exported, documented(readFileSync(resolve(root, "README.md"), "utf8")))).toEqual({ undocumented: [], missing: [] });
  });

  it("negative control: a name on one side only is reported", () => {
    expect(drift(["LockClient", "Lock"], ["LockClient", "parseLease"])).toEqual({ undocumented: ["Lock"], missing: ["parseLease"] });
  });
});
