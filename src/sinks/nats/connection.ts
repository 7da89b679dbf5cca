// Shared with the nats source since it moved to core; re-exported so the sink's imports stay as they were.
export { connectError, natsAuthOption, natsConnectionOptions } from '../../core/net/nats-connection.ts';
