/**
 * Synthesizes the Fencepost stack in-process and returns its CloudFormation template.
 * The local cloud provisions from this, so local and deployed stacks cannot drift.
 */
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import type { CloudFormationTemplate } from "../lib/local/template.js";
import { FencepostStack, STACK_NAME } from "./stack.js";

/**
 * The Fencepost app, with cdk-nag's AwsSolutions checks run at every synth (findings fail
 * it). Context `fencepost:tracing=false` (`cdk deploy -c fencepost:tracing=false`) turns
 * X-Ray tracing off, as `npm run deploy:local` does for LocalStack, which has no X-Ray.
 */
export function buildApp(app: App = new App()): { app: App; stack: FencepostStack } {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const tracing = app.node.tryGetContext("fencepost:tracing") as string | boolean | undefined;
  const stack = new FencepostStack(app, STACK_NAME, {
    description: "Fencepost: serverless coordination (locks with fencing tokens, ordering, 2PC)",
    ...(tracing === undefined ? {} : { fencepost: { tracing: tracing !== false && tracing !== "false" } }),
  });
  return { app, stack };
}

/** The synthesized template of the Fencepost stack, without writing cdk.out. */
export function synthesizeTemplate(): CloudFormationTemplate {
  const { app } = buildApp(new App({ outdir: undefined, context: { "aws:cdk:bundling-stacks": [] } }));
  const assembly = app.synth();
  return assembly.getStackByName(STACK_NAME).template as CloudFormationTemplate;
}
