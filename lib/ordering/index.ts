export { Broadcast, PayloadTooLargeError, PublishIncompleteError, SlotLostError, MAX_PAYLOAD_BYTES, MESSAGES_PER_TRANSACTION, deduplicationId, type BroadcastOptions, type PublishOptions, type PublishResult } from "./broadcast.js";
export { ConsumerGroup, type ConsumerGroupOptions, type Delivery, type Handler, type TransactionalHandler, type CatchUpResult, type SqsEvent } from "./consumer.js";
export { StreamLog, type Slot } from "./log.js";
