/**
 * For workloads a target may or may not serve yet (etcd-edge's JSON gateway): one request first; the
 * workload runs if it is answered as etcd would, else the cell is n/a with what the probe saw.
 */
import { HOT_KEY } from "../load/messages.js";

/** undefined when the target serves the workload, else what went wrong. */
export async function probeWorkload(workloadId: string, url: string): Promise<string | undefined> {
  if (workloadId !== "json-gateway") return undefined;
  try {
    const res = await fetch(new URL("/v3/kv/range", url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: Buffer.from(HOT_KEY).toString("base64"), serializable: true }),
      signal: AbortSignal.timeout(5000),
    });
    const body = await res.text();
    if (res.status !== 200) return `POST /v3/kv/range answered HTTP ${res.status}`;
    return body.includes('"kvs"') ? undefined : "POST /v3/kv/range answered without kvs";
  } catch (err) {
    return `POST /v3/kv/range failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}
