/**
 * The embedded local cloud: DynamoDB Local and the SQS emulator on free loopback ports,
 * provisioned from the synthesized CloudFormation template, and the template's Lambda
 * functions served behind the Invoke API (see lambda.ts).
 *
 * Guarantees: `startLocalCloud` resolves only when both emulators answer and every table
 * and queue of the template exists; `stop()` (and process exit) leaves no child process;
 * starting several clouds in one process works, each on its own ports. With
 * `AWS_ENDPOINT_URL` set (LocalStack on :4566, say) it starts nothing and provisions
 * against that endpoint instead.
 * Assumes: Java 17+ for DynamoDB Local; the template comes from `synthesizeTemplate()`
 * in infra/ or from a file written by `cdk synth`.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { existsSync, readFileSync } from "node:fs";
import { startDynamoDbLocal, startSqsEmulator, type RunningEmulator } from "./processes.js";
import { LocalCloudError } from "../errors.js";
import { provisionTemplate, type Provisioned, type ProvisionedQueue } from "./provision.js";
import { serveLambdas, type LocalLambdas } from "./lambda.js";
import type { CloudFormationTemplate } from "./template.js";

export interface LocalCloudOptions {
  /** The template to provision, or the path of a template JSON file. Default: cdk.out/Fencepost.template.json. */
  template?: CloudFormationTemplate | string;
  /** Region the emulators and clients use. Default: AWS_REGION or us-east-1. */
  region?: string;
  /** Use this endpoint for DynamoDB and SQS instead of starting emulators. Default: AWS_ENDPOINT_URL. */
  endpoint?: string;
  /** Stack name used to derive physical names of unnamed resources. Default: Fencepost. */
  stackName?: string;
  /** Serve the template's Lambda functions locally. Default: true (ignored with an external endpoint, which deploys its own). */
  functions?: boolean;
  /** Where the local functions' log lines go. Default: stderr, prefixed with the function name. */
  functionLog?: (functionName: string, line: string) => void;
  /** Runs `rate(...)` schedules this many times faster (for tests). Default: 1. */
  scheduleTimeScale?: number;
  /**
   * With an external endpoint: the outputs file `cdk deploy --outputs-file` wrote
   * (`npm run deploy:local` writes cdk.out/local-outputs.json), so the deployed lock and
   * coordination tables and functions are used rather than tables provisioned beside them.
   * Default: FENCEPOST_OUTPUTS_FILE or cdk.out/local-outputs.json, if present.
   */
  outputsFile?: string;
}

/** Stack outputs that name deployed resources, and the role each stands for. */
const OUTPUT_ROLES = {
  LockTableName: { kind: "table", role: "locks" },
  LockFunctionName: { kind: "function", role: "locks-function" },
  CoordinationTableName: { kind: "table", role: "coordination" },
  CoordinationFunctionName: { kind: "function", role: "coordination-function" },
} as const;

function deployedOutputs(path: string, stackName: string): { tables: Record<string, string>; functions: Record<string, string> } {
  const found = { tables: {} as Record<string, string>, functions: {} as Record<string, string> };
  if (!existsSync(path)) return found;
  const outputs = (JSON.parse(readFileSync(path, "utf8")) as Record<string, Record<string, string>>)[stackName] ?? {};
  for (const [key, { kind, role }] of Object.entries(OUTPUT_ROLES)) {
    const value = outputs[key];
    if (value) (kind === "table" ? found.tables : found.functions)[role] = value;
  }
  return found;
}

/** Static credentials the emulators accept (they check the format, not the secret). */
export const LOCAL_CREDENTIALS = { accessKeyId: "fencepostlocal", secretAccessKey: "fencepostlocal" } as const;

export interface LocalCloud {
  /** `lambda` is the Invoke API of the served functions (the external endpoint when there is one). */
  readonly endpoints: { readonly dynamodb: string; readonly sqs: string; readonly lambda?: string };
  /** Function names keyed by role (`locks-function`, ...), when functions are served. */
  readonly functions: Record<string, string>;
  readonly region: string;
  /** Table names keyed by role (`locks`, ...). */
  readonly tables: Record<string, string>;
  /** Queues keyed by role. */
  readonly queues: Record<string, ProvisionedQueue>;
  /** Every provisioned resource by logical id (what Ref / Fn::GetAtt resolve to). */
  readonly resources: Provisioned["resources"];
  /** True when the emulators run here; false when provisioning an external endpoint. */
  readonly embedded: boolean;
  /** Client configuration for `new DynamoDBClient(...)` / `new SQSClient(...)` against this cloud. */
  clientConfig(service: "dynamodb" | "sqs" | "lambda"): { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  /** Stops the emulators this cloud started. Idempotent. */
  stop(): Promise<void>;
}

function loadTemplate(template: LocalCloudOptions["template"]): CloudFormationTemplate {
  if (typeof template === "object") return template;
  const path = template ?? "cdk.out/Fencepost.template.json";
  if (!existsSync(path)) {
    throw new LocalCloudError(`No template at ${path}: run \`npx cdk synth\` or pass { template } (synthesizeTemplate() from fencepost/infra).`);
  }
  return JSON.parse(readFileSync(path, "utf8")) as CloudFormationTemplate;
}

/** Starts (or connects to) a local cloud and provisions every table and queue of the template. */
export async function startLocalCloud(options: LocalCloudOptions = {}): Promise<LocalCloud> {
  const template = loadTemplate(options.template);
  const region = options.region ?? process.env["AWS_REGION"] ?? "us-east-1";
  const external = options.endpoint ?? process.env["AWS_ENDPOINT_URL"];
  const credentials = external && process.env["AWS_ACCESS_KEY_ID"]
    ? { accessKeyId: process.env["AWS_ACCESS_KEY_ID"], secretAccessKey: process.env["AWS_SECRET_ACCESS_KEY"] ?? "" }
    : external ? { accessKeyId: "test", secretAccessKey: "test" } : LOCAL_CREDENTIALS;

  const started: RunningEmulator[] = [];
  let lambdas: LocalLambdas | undefined;
  const stopAll = async () => {
    await lambdas?.stop();
    lambdas = undefined;
    await Promise.all(started.splice(0).map((e) => e.stop()));
  };
  try {
    let endpoints: { dynamodb: string; sqs: string };
    if (external) {
      endpoints = { dynamodb: external, sqs: external };
    } else {
      const [ddb, sqs] = await Promise.allSettled([startDynamoDbLocal(), startSqsEmulator({ region })]);
      for (const emulator of [ddb, sqs]) if (emulator.status === "fulfilled") started.push(emulator.value);
      if (ddb.status === "rejected") throw ddb.reason;
      if (sqs.status === "rejected") throw sqs.reason;
      endpoints = { dynamodb: ddb.value.endpoint, sqs: sqs.value.endpoint };
    }
    const dynamodb = new DynamoDBClient({ endpoint: endpoints.dynamodb, region, credentials });
    const sqs = new SQSClient({ endpoint: endpoints.sqs, region, credentials });
    const provisioned = await provisionTemplate({ template, dynamodb, sqs, region, stackName: options.stackName }).finally(() => {
      dynamodb.destroy();
      sqs.destroy();
    });
    if (!external && options.functions !== false) {
      lambdas = await serveLambdas({ template, resources: provisioned.resources, region, endpoints, credentials, log: options.functionLog, scheduleTimeScale: options.scheduleTimeScale });
    }
    const deployed = external
      ? deployedOutputs(options.outputsFile ?? process.env["FENCEPOST_OUTPUTS_FILE"] ?? "cdk.out/local-outputs.json", options.stackName ?? "Fencepost")
      : { tables: {}, functions: {} };
    const all = { ...endpoints, ...(external ? { lambda: external } : lambdas ? { lambda: lambdas.endpoint } : {}) };
    const clientConfig = (service: "dynamodb" | "sqs" | "lambda") => {
      const endpoint = all[service];
      if (!endpoint) throw new LocalCloudError("this local cloud serves no Lambda functions (started with functions: false, or the template has none)");
      return { endpoint, region, credentials };
    };
    return {
      endpoints: all,
      functions: { ...(lambdas?.functions ?? {}), ...deployed.functions },
      region,
      ...provisioned,
      tables: { ...provisioned.tables, ...deployed.tables },
      embedded: !external,
      clientConfig,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * The shell line that points a default AWS SDK or CLI at the cloud: endpoints, region and
 * credentials (the embedded emulators accept any; DynamoDB Local shares one database
 * between all credentials, so these are only needed because the SDK insists on some).
 */
export function shellExports(cloud: LocalCloud): string {
  const { credentials } = cloud.clientConfig("dynamodb");
  const vars = {
    AWS_ENDPOINT_URL_DYNAMODB: cloud.endpoints.dynamodb,
    AWS_ENDPOINT_URL_SQS: cloud.endpoints.sqs,
    ...(cloud.endpoints.lambda ? { AWS_ENDPOINT_URL_LAMBDA: cloud.endpoints.lambda } : {}),
    AWS_REGION: cloud.region,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
  };
  return `export ${Object.entries(vars).map(([k, v]) => `${k}=${v}`).join(" ")}`;
}
