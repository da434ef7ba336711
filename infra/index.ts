export { Fencepost, RESOURCE_ROLE_TAG, type FencepostProps } from "./fencepost.js";
export { FencepostStack, STACK_NAME } from "./stack.js";
export { buildApp, synthesizeTemplate } from "./synth.js";
