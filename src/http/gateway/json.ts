/**
 * etcd's JSON mapping, as grpc-gateway's JSONPb{OrigName: true} (golang/protobuf jsonpb) writes and reads
 * it. Out: .proto field names (`create_revision`, `ID`, `TTL`), zero values omitted, int64 as decimal
 * strings, bytes as padded standard base64, enums by name, and Go's escaping of `<`, `>`, `&`, U+2028 and
 * U+2029 inside strings. In: proto names and lowerCamelCase names, unknown fields ignored, unknown enum
 * names refused (400), int64 as number or string, and integer literals beyond 2^53 kept exact (python
 * etcd3gw sends lease IDs as JSON numbers; JSON.parse would round them to another lease).
 */
import { create, fromJson, toJson, type DescEnum, type DescField, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { badRequest } from "./errors.js";

/** A message as etcd's gateway writes it. */
export function encodeMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): string {
  return goJson(toJson(schema, message, { useProtoFieldName: true }));
}

/** JSON.stringify with Go's encoding/json escaping, so bytes on the wire match etcd's gateway. */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * One request message from one JSON text (a single value, as json-splitter.ts cuts them). `null` is the
 * default message, as Go decodes it; anything that does not fit the message is a 400.
 */
export function decodeMessage<Desc extends DescMessage>(schema: Desc, text: string): MessageShape<Desc> {
  let value: unknown;
  try {
    value = JSON.parse(markBigIntegers(text));
  } catch (err) {
    throw badRequest(err instanceof Error ? err.message : String(err));
  }
  if (value === null) return create(schema);
  try {
    // ignoreUnknownFields stays off: with it protobuf-es would also drop unknown enum names silently,
    // where etcd answers 400. Unknown fields are removed beforehand by pruneMessage instead.
    return fromJson(schema, pruneMessage(schema, value) as JsonValue);
  } catch (err) {
    if (err instanceof ConnectError) throw err;
    throw badRequest(err instanceof Error ? err.message : String(err));
  }
}

/**
 * Integer literals that a double cannot hold exactly (16 digits or more) become marked strings before
 * JSON.parse; pruneMessage turns them back into numbers, or into exact decimal strings for 64-bit fields.
 * String literals are matched first so that digits inside them are left alone.
 */
const BIG_INTEGER = /"[^"\\]*(?:\\.[^"\\]*)*"|(?<![\w.+-])-?\d{16,}(?![.eE\d])/g;
const MARK = "\u0000int:";

function markBigIntegers(text: string): string {
  // Written as the JSON escape \u0000, which JSON.parse turns into MARK's NUL.
  return text.replace(BIG_INTEGER, (m) => (m.startsWith('"') ? m : `"\\u0000int:${m}"`));
}

const isMarked = (v: unknown): v is string => typeof v === "string" && v.startsWith(MARK);

const fieldsByJsonKey = new WeakMap<DescMessage, Map<string, DescField>>();

function fieldFor(desc: DescMessage, key: string): DescField | undefined {
  let map = fieldsByJsonKey.get(desc);
  if (!map) {
    map = new Map();
    for (const f of desc.fields) {
      map.set(f.name, f);
      map.set(f.jsonName, f);
    }
    fieldsByJsonKey.set(desc, map);
  }
  return map.get(key);
}

/** The JSON value with unknown fields removed and marked integers restored, walking the message type. */
function pruneMessage(desc: DescMessage, value: unknown): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return unmark(value, undefined);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const field = fieldFor(desc, key);
    // Unknown fields are ignored, as etcd's gateway does, so clients of newer etcd versions keep working.
    if (field) out[key] = pruneField(field, v);
  }
  return out;
}

function pruneField(field: DescField, v: unknown): unknown {
  switch (field.fieldKind) {
    case "message":
      return pruneMessage(field.message, v);
    case "scalar":
      return unmark(v, field.scalar);
    case "enum":
      return checkEnum(field.enum, unmark(v, undefined));
    case "list":
      if (!Array.isArray(v)) return unmark(v, undefined);
      return v.map((item) => {
        if (field.listKind === "message") return pruneMessage(field.message, item);
        if (field.listKind === "enum") return checkEnum(field.enum, unmark(item, undefined));
        return unmark(item, field.scalar);
      });
    case "map":
      if (v === null || typeof v !== "object" || Array.isArray(v)) return unmark(v, undefined);
      return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, field.mapKind === "message" ? pruneMessage(field.message, item) : unmark(item, field.mapKind === "scalar" ? field.scalar : undefined)]));
  }
}

const WIDE_INTEGERS = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

/** A marked integer: exact digits for a 64-bit field, else the number it is (so the field refuses it as Go would). */
function unmark(v: unknown, scalar: ScalarType | undefined): unknown {
  if (!isMarked(v)) return v;
  const digits = v.slice(MARK.length);
  return scalar !== undefined && WIDE_INTEGERS.has(scalar) ? digits : Number(digits);
}

/**
 * An enum given by name must name a value: etcd answers 400 `unknown value "BOGUS" for enum
 * etcdserverpb.RangeRequest_SortOrder` (Go's registered enum name), and so do we. Numbers pass: proto3
 * enums are open, and etcd accepts any number too.
 */
function checkEnum(desc: DescEnum, v: unknown): unknown {
  if (typeof v === "string" && !desc.values.some((e) => e.name === v)) {
    const pkg = desc.file.proto.package;
    const goName = `${pkg}.${desc.typeName.slice(pkg.length + 1).replaceAll(".", "_")}`;
    throw badRequest(`unknown value ${JSON.stringify(v)} for enum ${goName}`);
  }
  return v;
}
