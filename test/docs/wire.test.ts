/**
 * The wire protocol page is what the functions accept: every example request passes its
 * function's schema, and docs/wire-protocol.md is exactly what `npm run docs` renders.
 */
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { COORDINATION_ACTIONS, coordinationRequestSchema } from "../../lib/coordination/protocol.js";
import { lockRequestSchema, LOCK_ACTIONS } from "../../lib/locks/protocol.js";
import { txnRequestSchema } from "../../lib/service/txn-api.js";
import { validator } from "../../lib/service/validate.js";
import { coordinationRequestExamples, lockRequestExamples, renderWireProtocol, txnRequestExamples } from "../../lib/service/wire.js";

it("gives one example per action, each valid against its function's schema", () => {
  expect(Object.keys(lockRequestExamples).sort()).toEqual([...LOCK_ACTIONS].sort());
  const lock = validator(lockRequestSchema);
  for (const example of Object.values(lockRequestExamples)) expect(() => lock(example), example.action).not.toThrow();
  const txn = validator(txnRequestSchema);
  const txnActions = txnRequestSchema.oneOf.map((branch) => branch.properties.action.const).sort();
  expect(Object.keys(txnRequestExamples).sort()).toEqual(txnActions);
  for (const example of Object.values(txnRequestExamples)) expect(() => txn(example), example.action).not.toThrow();
  expect(Object.keys(coordinationRequestExamples).sort()).toEqual([...COORDINATION_ACTIONS].sort());
  const coordination = validator(coordinationRequestSchema);
  for (const example of Object.values(coordinationRequestExamples)) expect(() => coordination(example), example.action).not.toThrow();
});

it("documents every function, the coordination function with its stack output", () => {
  const page = renderWireProtocol();
  for (const output of ["LockFunctionName", "TxnFunctionName", "CoordinationFunctionName"]) expect(page).toContain(`stack output \`${output}\``);
  for (const action of COORDINATION_ACTIONS) expect(page).toContain(`"action": "${action}"`);
});

it("keeps docs/wire-protocol.md as npm run docs renders it", () => {
  expect(readFileSync(new URL("../../docs/wire-protocol.md", import.meta.url), "utf8")).toBe(renderWireProtocol());
});
