#!/usr/bin/env node
/**
 * The `fencepost` command line.
 *
 *   fencepost up [--json]   serve the stack on the embedded local cloud until Ctrl-C
 */
import { parseArgs } from "node:util";
// The SDK's notice that its 2027 releases need Node 22 is for library users, not CLI output.
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";
import { synthesizeTemplate } from "../infra/synth.js";
import { LocalCloudError, startLocalCloud, type LocalCloud } from "../lib/local/index.js";

const USAGE = `usage: fencepost <command> [options]

commands:
  up        start DynamoDB Local and the SQS emulator, provision the Fencepost stack, serve until Ctrl-C

options:
  --json    machine-readable output
  -h, --help`;

function describe(cloud: LocalCloud): string {
  const lines = [
    `Fencepost local cloud is up (${cloud.embedded ? "embedded emulators" : "external endpoint"}, region ${cloud.region})`,
    `  DynamoDB  ${cloud.endpoints.dynamodb}`,
    `  SQS       ${cloud.endpoints.sqs}`,
    ...Object.entries(cloud.tables).map(([role, name]) => `  table  ${role.padEnd(10)} ${name}`),
    ...Object.entries(cloud.queues).map(([role, q]) => `  queue  ${role.padEnd(10)} ${q.url}`),
    "",
    "Point the AWS SDK or CLI at it:",
    `  export AWS_ENDPOINT_URL_DYNAMODB=${cloud.endpoints.dynamodb} AWS_ENDPOINT_URL_SQS=${cloud.endpoints.sqs} AWS_REGION=${cloud.region}`,
    "Ctrl-C stops it.",
  ];
  return lines.join("\n");
}

async function up(json: boolean): Promise<void> {
  const startedAt = performance.now();
  if (!json) process.stdout.write("Starting DynamoDB Local and the SQS emulator...\n");
  const cloud = await startLocalCloud({ template: synthesizeTemplate() });
  const summary = { endpoints: cloud.endpoints, region: cloud.region, tables: cloud.tables, queues: cloud.queues };
  process.stdout.write(json ? `${JSON.stringify(summary)}\n` : `${describe(cloud)}\n(ready in ${((performance.now() - startedAt) / 1000).toFixed(1)} s)\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  if (!json) process.stdout.write("\nStopping...\n");
  await cloud.stop();
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
  });
  const [command] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  switch (command) {
    case "up":
      await up(values.json ?? false);
      return 0;
    default:
      process.stderr.write(`fencepost: unknown command '${command}'\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // Our own errors already say what to do; anything else gets its stack for a bug report.
    const text = err instanceof LocalCloudError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`fencepost: ${text}\n`);
    process.exit(1);
  },
);
