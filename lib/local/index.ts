export { startLocalCloud, shellExports, LOCAL_CREDENTIALS, type LocalCloud, type LocalCloudOptions } from "./cloud.js";
export { freePort } from "./processes.js";
export { LocalCloudError, TemplateError } from "../errors.js";
export { provisionTemplate, type Provisioned, type ProvisionedQueue, type ProvisionOptions } from "./provision.js";
export {
  resolveIntrinsics,
  resourceRole,
  resourcesOfType,
  type CloudFormationResource,
  type CloudFormationTemplate,
  type ResolvedResource,
} from "./template.js";
