/**
 * The browser test's page (bundled by test/browser/chromium.test.ts with esbuild, served from an origin
 * other than the proxy's): with the same browser client as --ui, for gRPC-Web and Connect at once, it
 * does put, get, txn, an etcd error, and a live watch over etcdedge.v1.Edge/Watch; it reports into
 * window.edgeTest, which the test reads. `?proxy=<url>&prefix=<key prefix>`.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { Compare_CompareResult, Compare_CompareTarget } from "../../gen/etcdserverpb/rpc_pb.js";
import { Event_EventType } from "../../gen/mvccpb/kv_pb.js";
import { browserClient, enc, text, watchPrefix, type BrowserProtocol } from "../../src/browser/client.js";

export interface Outcome {
  /** The watch is created on etcd: the test may write now. */
  watching: boolean;
  done: boolean;
  get?: string | undefined;
  txnSucceeded?: boolean;
  afterTxn?: string | undefined;
  /** "InvalidArgument: etcdserver: key is not provided" when the status made it through CORS. */
  emptyKeyError?: string;
  event?: { type: string; key: string | undefined; value: string | undefined };
  error?: string;
}

declare global {
  interface Window { edgeTest: Record<string, Outcome> }
}

const params = new URLSearchParams(location.search);
const proxy = params.get("proxy") ?? "";
const prefix = params.get("prefix") ?? "browser/";
window.edgeTest = {};

async function run(protocol: BrowserProtocol): Promise<void> {
  const out: Outcome = { watching: false, done: false };
  window.edgeTest[protocol] = out;
  try {
    const c = browserClient(proxy, protocol);
    const p = `${prefix}${protocol}/`;
    const key = enc(p + "a");
    await c.kv.put({ key, value: enc("1") });
    out.get = text((await c.kv.range({ key })).kvs[0]!.value);
    const txn = await c.kv.txn({
      compare: [{ key, result: Compare_CompareResult.EQUAL, target: Compare_CompareTarget.VALUE, targetUnion: { case: "value", value: enc("1") } }],
      success: [{ request: { case: "requestPut", value: { key, value: enc("2") } } }],
    });
    out.txnSucceeded = txn.succeeded;
    out.afterTxn = text((await c.kv.range({ key })).kvs[0]!.value);
    try {
      await c.kv.range({ key: new Uint8Array() });
      out.emptyKeyError = "no error";
    } catch (err) {
      const ce = ConnectError.from(err);
      out.emptyKeyError = `${Code[ce.code]}: ${ce.rawMessage}`;
    }
    const abort = new AbortController();
    for await (const res of watchPrefix(c, p + "live/", { signal: abort.signal, onCreated: () => { out.watching = true; } })) {
      const ev = res.events[0];
      if (!ev) continue;
      out.event = { type: Event_EventType[ev.type], key: text(ev.kv!.key), value: text(ev.kv!.value) };
      abort.abort();
    }
  } catch (err) {
    out.error = err instanceof Error ? err.message : String(err);
  } finally {
    out.done = true;
    document.getElementById("out")!.textContent = JSON.stringify(window.edgeTest, null, 2);
  }
}

void run("grpc-web");
void run("connect");
