/**
 * One local cloud per test run, shared by every integration test (or, with
 * AWS_ENDPOINT_URL set, the tables and queues provisioned on that endpoint).
 */
// The SDK's notice that its 2027 releases need Node 22 is noise in test output.
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";

import type { TestProject } from "vitest/node";
import { synthesizeTemplate } from "../../infra/synth.js";
import { startLocalCloud, type LocalCloud } from "../../lib/local/index.js";

export interface SharedCloud {
  endpoints: LocalCloud["endpoints"];
  region: string;
  tables: LocalCloud["tables"];
  queues: LocalCloud["queues"];
  functions: LocalCloud["functions"];
  credentials: { accessKeyId: string; secretAccessKey: string };
}

declare module "vitest" {
  export interface ProvidedContext {
    cloud: SharedCloud;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // The functions' Powertools log lines and EMF metrics lines would drown the test output; keep only errors.
  const cloud = await startLocalCloud({
    template: synthesizeTemplate(),
    functionLog: (fn, line) => {
      if (!/"level":"(INFO|WARN)"|^\{"_aws":/.test(line)) process.stderr.write(`[${fn}] ${line}\n`);
    },
  });
  const { credentials } = cloud.clientConfig("dynamodb");
  project.provide("cloud", { endpoints: cloud.endpoints, region: cloud.region, tables: cloud.tables, queues: cloud.queues, functions: cloud.functions, credentials });
  return () => cloud.stop();
}
