// Transitional: lib/txn still imports invokeJson from here until its split lands.
export { invokeJson } from "../internal/lambda.js";
