/**
 * connect-node clients of the proxy in each protocol a user may speak: gRPC, gRPC-Web and Connect (binary
 * and JSON), over HTTP/2, and over HTTP/1.1 where the protocol allows it.
 */
import type { DescService } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

export type ProtocolName = "grpc" | "grpc-web" | "connect-binary" | "connect-json";
export const PROTOCOLS: readonly ProtocolName[] = ["grpc", "grpc-web", "connect-binary", "connect-json"];

export interface TransportTls {
  ca?: Buffer | string;
  cert?: Buffer | string;
  key?: Buffer | string;
}

export function transportFor(protocol: ProtocolName, baseUrl: string, httpVersion: "1.1" | "2" = "2", tls?: TransportTls): Transport {
  const nodeOptions = tls ? { ...tls } : {};
  switch (protocol) {
    case "grpc":
      return createGrpcTransport({ baseUrl, nodeOptions });
    case "grpc-web":
      return httpVersion === "2" ? createGrpcWebTransport({ baseUrl, httpVersion, nodeOptions }) : createGrpcWebTransport({ baseUrl, httpVersion, nodeOptions });
    case "connect-binary":
      return httpVersion === "2" ? createConnectTransport({ baseUrl, httpVersion, useBinaryFormat: true, nodeOptions }) : createConnectTransport({ baseUrl, httpVersion, useBinaryFormat: true, nodeOptions });
    case "connect-json":
      return httpVersion === "2" ? createConnectTransport({ baseUrl, httpVersion, useBinaryFormat: false, nodeOptions }) : createConnectTransport({ baseUrl, httpVersion, useBinaryFormat: false, nodeOptions });
  }
}

export function clientFor<S extends DescService>(service: S, protocol: ProtocolName, baseUrl: string, httpVersion: "1.1" | "2" = "2", tls?: TransportTls): Client<S> {
  return createClient(service, transportFor(protocol, baseUrl, httpVersion, tls));
}

export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** The error a call failed with, as a ConnectError; throws when the call succeeded. */
export async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded; expected an error");
}
