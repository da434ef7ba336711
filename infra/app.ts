/** The CDK app `cdk synth` / `cdk deploy` run (see cdk.json). */
import { App } from "aws-cdk-lib";
import { buildApp } from "./synth.js";

buildApp(new App());
