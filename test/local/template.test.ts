import { describe, expect, it } from "vitest";
import { resolveIntrinsics, TemplateError } from "../../lib/local/index.js";

describe("resolveIntrinsics", () => {
  const resolved = { Q: { ref: "https://q", attributes: { Arn: "arn:q" } } };
  const pseudo = { "AWS::Region": "eu-west-1" };

  it("resolves Ref, Fn::GetAtt (both forms), Fn::Join and pseudo parameters inside nested values", () => {
    const value = {
      url: { Ref: "Q" },
      arn: { "Fn::GetAtt": ["Q", "Arn"] },
      dotted: { "Fn::GetAtt": "Q.Arn" },
      list: [{ "Fn::Join": ["/", [{ Ref: "AWS::Region" }, "x"]] }],
    };
    expect(resolveIntrinsics(value, resolved, pseudo)).toEqual({ url: "https://q", arn: "arn:q", dotted: "arn:q", list: ["eu-west-1/x"] });
  });

  it("names what it cannot resolve instead of guessing", () => {
    expect(() => resolveIntrinsics({ a: { Ref: "Missing" } }, resolved, pseudo)).toThrow(/template\.a: Ref to Missing/);
    expect(() => resolveIntrinsics({ "Fn::GetAtt": ["Q", "Nope"] }, resolved, pseudo)).toThrow(TemplateError);
    expect(() => resolveIntrinsics({ "Fn::Sub": "x" }, resolved, pseudo)).toThrow(/Fn::Sub is not supported/);
  });
});
