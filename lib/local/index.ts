export { startLocalCloud, shellExports, LOCAL_CREDENTIALS, type LocalCloud, type LocalCloudOptions } from "./cloud.js";
export { LocalCloudError, freePort } from "./processes.js";
export { provisionTemplate, type Provisioned, type ProvisionedQueue, type ProvisionOptions } from "./provision.js";
export {
  resolveIntrinsics,
  resourceRole,
  resourcesOfType,
  TemplateError,
  type CloudFormationResource,
  type CloudFormationTemplate,
  type ResolvedResource,
} from "./template.js";
