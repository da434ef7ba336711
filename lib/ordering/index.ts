export { Broadcast, MAX_PAYLOAD_BYTES, MESSAGES_PER_TRANSACTION, deduplicationId, type BroadcastOptions, type PublishOptions } from "./broadcast.js";
export { ConsumerGroup, DEFAULT_HOLE_TIMEOUT_MS, type ConsumerGroupOptions, type Delivery, type Handler, type TransactionalHandler, type CatchUpResult, type SqsEvent } from "./consumer.js";
export { StreamLog, FILLS_IN_FLIGHT, type Slot, type SlotPage } from "./log.js";
