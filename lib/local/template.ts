/**
 * Reading a synthesized CloudFormation template: the tables and queues it declares and
 * the intrinsic functions (Ref, Fn::GetAtt, Fn::Join) needed to wire them together.
 *
 * Guarantees: every AWS::DynamoDB::Table and AWS::SQS::Queue in the template is found;
 * an intrinsic this module cannot resolve is an error naming it, never a silent guess.
 * Assumes: a template produced by `cdk synth` (JSON, no parameters needed to provision).
 */
import { TemplateError } from "../errors.js";

export interface CloudFormationResource {
  Type: string;
  Properties?: Record<string, unknown>;
  DependsOn?: string | string[];
  Metadata?: Record<string, unknown>;
}

export interface CloudFormationTemplate {
  Resources: Record<string, CloudFormationResource>;
  Outputs?: Record<string, { Value: unknown; Export?: unknown }>;
  [section: string]: unknown;
}

/** What a resource resolves to: `Ref` and each `Fn::GetAtt` attribute. */
export interface ResolvedResource {
  ref: string;
  attributes: Record<string, string>;
}


/** The `fencepost:resource` tag value of a resource, if it carries one. */
export function resourceRole(resource: CloudFormationResource): string | undefined {
  const tags = resource.Properties?.["Tags"];
  if (!Array.isArray(tags)) return undefined;
  for (const tag of tags as Array<{ Key?: unknown; Value?: unknown }>) {
    if (tag.Key === "fencepost:resource" && typeof tag.Value === "string") return tag.Value;
  }
  return undefined;
}

/** Logical ids of the resources of one type, in template order. */
export function resourcesOfType(template: CloudFormationTemplate, type: string): string[] {
  return Object.entries(template.Resources)
    .filter(([, resource]) => resource.Type === type)
    .map(([logicalId]) => logicalId);
}

/**
 * Replaces Ref / Fn::GetAtt / Fn::Join in `value` with what `resolved` says, recursively.
 * Pseudo parameters AWS::Region, AWS::AccountId, AWS::Partition, AWS::URLSuffix and
 * AWS::StackName come from `pseudo`.
 */
export function resolveIntrinsics(
  value: unknown,
  resolved: Record<string, ResolvedResource>,
  pseudo: Record<string, string>,
  where = "template",
): unknown {
  if (Array.isArray(value)) return value.map((v, i) => resolveIntrinsics(v, resolved, pseudo, `${where}[${i}]`));
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>);
  const [first] = entries;
  if (entries.length === 1 && first !== undefined) {
    const [key, arg] = first;
    if (key === "Ref") {
      const name = String(arg);
      if (name in pseudo) return pseudo[name];
      const target = resolved[name];
      if (!target) throw new TemplateError(`${where}: Ref to ${name}, which is not provisioned locally`);
      return target.ref;
    }
    if (key === "Fn::GetAtt") {
      const [logicalId, attribute] = Array.isArray(arg) ? arg.map(String) : String(arg).split(".");
      const target = resolved[logicalId ?? ""];
      const attr = target?.attributes[attribute ?? ""];
      if (attr === undefined) {
        throw new TemplateError(`${where}: Fn::GetAtt ${logicalId}.${attribute} cannot be resolved locally`);
      }
      return attr;
    }
    if (key === "Fn::Join") {
      const [separator, parts] = arg as [string, unknown[]];
      return parts.map((p, i) => String(resolveIntrinsics(p, resolved, pseudo, `${where}.Fn::Join[${i}]`))).join(separator);
    }
    if (key.startsWith("Fn::")) throw new TemplateError(`${where}: intrinsic ${key} is not supported by the local cloud`);
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, resolveIntrinsics(v, resolved, pseudo, `${where}.${k}`)]));
}
