/**
 * The console's sources for a stack served on this machine (`fencepost up`, the test
 * cloud): its endpoints, credentials and the resources by role, as the local cloud and its
 * state file describe them. Takes the description, not the cloud, so lib/console does not
 * depend on lib/local.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import type { ConsoleSources } from "./sources.js";

/** What a local stack says about itself (LocalCloud, and the state file of `fencepost up`). */
export interface LocalStackDescription {
  readonly region: string;
  readonly endpoints: { readonly dynamodb: string; readonly lambda?: string | undefined };
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Table names by role (`log`). */
  readonly tables: Readonly<Record<string, string>>;
  /** Function names by role (`locks-function`, `txn-function`, `coordination-function`). */
  readonly functions: Readonly<Record<string, string>>;
}

/** Sources for every part the stack has; parts it lacks are left out (shown as not configured). */
export function localSources(stack: LocalStackDescription): ConsoleSources {
  const { region, credentials } = stack;
  const lambdaEndpoint = stack.endpoints.lambda;
  const lambda = lambdaEndpoint ? new LambdaClient({ endpoint: lambdaEndpoint, region, credentials }) : undefined;
  const fn = (role: string) => (lambda && stack.functions[role] ? { lambda, functionName: stack.functions[role] } : undefined);
  const log = stack.tables["log"];
  const locks = fn("locks-function");
  const txn = fn("txn-function");
  const coordination = fn("coordination-function");
  return {
    ...(locks ? { locks } : {}),
    ...(txn ? { txn } : {}),
    ...(coordination ? { coordination } : {}),
    ...(log ? { log: { dynamodb: new DynamoDBClient({ endpoint: stack.endpoints.dynamodb, region, credentials }), tableName: log } } : {}),
  };
}
