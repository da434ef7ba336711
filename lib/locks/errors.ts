// Transitional: lib/txn still imports its errors from here until its split lands.
export * from "../errors.js";
