/**
 * The protobuf half of the OTLP/HTTP logs codec (src/codecs/otlp.ts): the schema, protobufjs, decoding a request
 * and encoding the answers. Imported on the first protobuf request (loadOtlpProtobuf), not at start.
 */
import protobuf from 'protobufjs';
import { TooManyEventsError } from './body-limits.ts';

// The OTLP messages the logs endpoint needs, with the field numbers of opentelemetry-proto (logs/v1, common/v1,
// resource/v1, collector/logs/v1). Field names are camel-cased by protobufjs, which makes them the OTLP/JSON names,
// so one mapping reads both encodings. Severity is an enum on the wire, a varint like int32.
const SCHEMA = `
syntax = "proto3";
package fluxo.otlp;
message AnyValue {
  oneof value {
    string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope {
  string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4;
}
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message LogRecord {
  fixed64 time_unix_nano = 1; fixed64 observed_time_unix_nano = 11; int32 severity_number = 2;
  string severity_text = 3; AnyValue body = 5; repeated KeyValue attributes = 6;
  uint32 dropped_attributes_count = 7; fixed32 flags = 8; bytes trace_id = 9; bytes span_id = 10;
  string event_name = 12;
}
message ScopeLogs { InstrumentationScope scope = 1; repeated LogRecord log_records = 2; string schema_url = 3; }
message ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; string schema_url = 3; }
message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
message ExportLogsPartialSuccess { int64 rejected_log_records = 1; string error_message = 2; }
message ExportLogsServiceResponse { ExportLogsPartialSuccess partial_success = 1; }
message Status { int32 code = 1; string message = 2; }
`;

const root = protobuf.parse(SCHEMA).root;
const RequestType = root.lookupType('fluxo.otlp.ExportLogsServiceRequest');
const ResponseType = root.lookupType('fluxo.otlp.ExportLogsServiceResponse');
const StatusType = root.lookupType('fluxo.otlp.Status');

/** The request as plain objects with the OTLP/JSON field names; protobufjs throws on a malformed body. */
export function decodeRequest(body: Uint8Array): unknown {
  return RequestType.decode(body);
}

/**
 * Counts the LogRecords of a protobuf ExportLogsServiceRequest by walking its wire format (resource_logs = 1 →
 * scope_logs = 2 → log_records = 2) without decoding them; throws TooManyEventsError past `max`. A malformed body
 * stops the walk quietly: protobufjs reports it next.
 */
export function countProtobufLogRecords(body: Uint8Array, max: number): number {
  let count = 0;
  const onRecord = () => {
    if (++count > max) throw new TooManyEventsError(max);
  };
  const onScopeLogs = (start: number, end: number) => forEachMessageField(body, start, end, 2, onRecord);
  const onResourceLogs = (start: number, end: number) => forEachMessageField(body, start, end, 2, onScopeLogs);
  forEachMessageField(body, 0, body.length, 1, onResourceLogs);
  return count;
}

/**
 * Calls `fn` with the bounds of each length-delimited field `fieldNo` of the message in `buf[start, end)`. The
 * walk reads tags, lengths and unknown fields (groups included) with protobufjs's own Reader, the way its decoder
 * does: a walk that read them otherwise (it used to stop at a group, which the decoder skips) counts fewer records
 * than the decoder then builds.
 */
function forEachMessageField(
  buf: Uint8Array,
  start: number,
  end: number,
  fieldNo: number,
  fn: (start: number, end: number) => void,
): void {
  const reader = protobuf.Reader.create(buf);
  reader.pos = start;
  reader.len = end;
  while (reader.pos < end) {
    let len: number;
    try {
      const tag = reader.tag();
      if (tag >>> 3 !== fieldNo || (tag & 7) !== 2) {
        reader.skipType(tag & 7, 0, tag >>> 3);
        continue;
      }
      len = reader.size();
    } catch {
      return; // malformed: the decoder throws at the same place
    }
    const from = reader.pos;
    if (len > end - from) return;
    fn(from, from + len);
    reader.pos = from + len;
  }
}

/** The success response: empty when everything was accepted, else a partial success with the count and reason. */
export function encodeResponse(rejected: number, errorMessage: string): Buffer {
  if (rejected === 0) return EMPTY_RESPONSE;
  const message = { partialSuccess: { rejectedLogRecords: rejected, errorMessage } };
  return Buffer.from(ResponseType.encode(ResponseType.fromObject(message)).finish());
}

/** The full-success body, the same for every request (Node copies a buffer into the socket, never keeps it). */
const EMPTY_RESPONSE = Buffer.from(ResponseType.encode(ResponseType.fromObject({})).finish());

/** A google.rpc.Status body for error responses. */
export function encodeStatus(code: number, message: string): Buffer {
  return Buffer.from(StatusType.encode(StatusType.fromObject({ code, message })).finish());
}
