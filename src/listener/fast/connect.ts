/** The Connect protocol's unary calls (wire.md §2), proto and JSON, over HTTP/1.1 and HTTP/2. */
import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { parseBinary } from "../../wire/frame.js";
import { binaryOf } from "../../wire/shared-replies.js";
import { connectTimeout } from "../../wire/timeout.js";
import type { Res } from "./exchange.js";
import type { UnaryWire } from "./wire.js";

/** The Connect handlers' JSON options (connect-adapter.ts): unknown fields are ignored, as etcd's gateway does. */
export const JSON_READ = { ignoreUnknownFields: true };

function connectWire(binary: boolean): UnaryWire {
  const contentType = binary ? "application/proto" : "application/json";
  return {
    protocol: "connect",
    framing: 0,
    timeout: (headers) => connectTimeout(headers["connect-timeout-ms"]),
    parse(input, body) {
      if (binary) return parseBinary(input, body);
      try {
        return fromJsonString(input, body.toString("utf8"), JSON_READ);
      } catch (err) {
        throw ConnectError.from(err, Code.InvalidArgument);
      }
    },
    ok(x, output, message) {
      const body = binary ? asBuffer(binaryOf(output, message)) : Buffer.from(toJsonString(output, message));
      const res = x.res as Res;
      res.writeHead(200, { "content-type": contentType, "content-length": body.length });
      res.end(body);
    },
    error(x, err) {
      connectError(x.res as Res, err);
    },
  };
}

/** Connect's error answer: the code's HTTP status and the JSON error body, as connect-es writes it. */
export function connectError(res: Res, err: ConnectError): void {
  const body = errorToJsonBytes(err, {});
  res.writeHead(codeToHttpStatus(err.code), { "content-type": "application/json", "content-length": body.byteLength });
  res.end(body);
}

export const CONNECT_PROTO = connectWire(true);
export const CONNECT_JSON = connectWire(false);

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
