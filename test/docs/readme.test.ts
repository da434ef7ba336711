/**
 * Every TypeScript example in the README compiles as written: each ```ts block is
 * type-checked as its own module, with `fencepost`, `fencepost/local` and `fencepost/infra`
 * resolved to this checkout's sources, under the project's strict compiler options.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import ts from "typescript";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

interface Block {
  readonly line: number;
  readonly path: string;
  readonly text: string;
}

function readmeBlocks(): Block[] {
  const lines = readFileSync(join(root, "README.md"), "utf8").split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i]!)) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end]!.startsWith("```")) end++;
    blocks.push({ line: start + 1, path: join(root, `readme-example-line-${start + 1}.ts`), text: lines.slice(start, end).join("\n") });
    i = end;
  }
  return blocks;
}

it("type-checks every TypeScript block of the README", () => {
  const blocks = readmeBlocks();
  expect(blocks.length).toBeGreaterThan(3);
  const config = ts.getParsedCommandLineOfConfigFile(join(root, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!;
  const options: ts.CompilerOptions = {
    ...config.options,
    noEmit: true,
    paths: { fencepost: ["./lib/index.ts"], "fencepost/local": ["./lib/local/index.ts"], "fencepost/infra": ["./infra/index.ts"] },
  };
  const virtual = new Map(blocks.map((b) => [b.path, b.text]));
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (path) => virtual.has(path) || fileExists.call(host, path);
  host.readFile = (path) => virtual.get(path) ?? readFile.call(host, path);
  host.getSourceFile = (path, language, ...rest) =>
    virtual.has(path) ? ts.createSourceFile(path, virtual.get(path)!, language) : getSourceFile.call(host, path, language, ...rest);
  const program = ts.createProgram([...virtual.keys()], options, host);
  const problems = blocks.flatMap((block) =>
    ts.getPreEmitDiagnostics(program, program.getSourceFile(block.path)).map((d) => {
      const at = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : 0;
      return `README.md:${block.line + at}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
    }),
  );
  expect(problems).toEqual([]);
});
