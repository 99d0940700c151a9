/**
 * The --ui page's script (bundled into dist/ui/app.js by scripts/build-ui.js): lists the keys under a
 * prefix with one Range, then keeps the list and the selected value current with a live Edge/Watch from
 * the revision after that Range, so no event is missed between the two. Values are shown as text only.
 */
import { Event_EventType, type KeyValue } from "../../gen/mvccpb/kv_pb.js";
import { browserClient, prefixRange, text, watchPrefix } from "../browser/client.js";

/** Keys listed at most: a bigger prefix is cut here (the title says so) so the page stays responsive. */
const MAX_KEYS = 1000;
/** Live events kept in the log; older ones drop off the bottom. */
const MAX_EVENTS = 50;
/** Retry a failed watch after this long, doubling up to the cap, so a restarting etcd is not hammered. */
const RETRY_MS = 1000;
const RETRY_MAX_MS = 30_000;

const client = browserClient(location.origin, "connect");
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const keysList = $<HTMLUListElement>("keys");
const keysTitle = $<HTMLHeadingElement>("keys-title");
const valueBox = $<HTMLDivElement>("value");
const eventsList = $<HTMLUListElement>("events");
const status = $<HTMLSpanElement>("status");
const prefixInput = $<HTMLInputElement>("prefix");

/** The listed keys, by key text; owned by the current load() (a new load replaces it). */
let keys = new Map<string, KeyValue>();
let more = false;
let selected: string | undefined;
let current: AbortController | undefined;

const keyText = (kv: KeyValue) => text(kv.key) ?? hex(kv.key);
const hex = (b: Uint8Array) => "0x" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function setStatus(msg: string, kind: "live" | "error" | "" = ""): void {
  status.textContent = msg;
  status.className = kind;
}

function renderKeys(flash?: string): void {
  const sorted = [...keys.keys()].sort();
  // The prefix in its own element: the heading's capitals must not change what the key looks like.
  const shownPrefix = document.createElement("code");
  shownPrefix.textContent = `"${prefixInput.value}"`;
  keysTitle.replaceChildren("Keys under ", shownPrefix, ` (${sorted.length}${more ? `, first ${MAX_KEYS} shown` : ""})`);
  keysList.replaceChildren(...sorted.map((k) => {
    const kv = keys.get(k)!;
    const li = document.createElement("li");
    li.dataset["key"] = k;
    const name = document.createElement("span");
    name.textContent = k;
    const rev = document.createElement("span");
    rev.className = "rev";
    rev.textContent = `rev ${kv.modRevision}`;
    li.append(name, rev);
    if (k === selected) li.classList.add("selected");
    if (k === flash) li.classList.add("flash");
    li.addEventListener("click", () => { selected = k; renderKeys(); renderValue(); });
    return li;
  }));
  if (sorted.length === 0) keysList.innerHTML = '<li class="empty">No keys.</li>';
}

function renderValue(): void {
  const kv = selected === undefined ? undefined : keys.get(selected);
  if (!kv) {
    valueBox.innerHTML = `<div class="empty">${selected === undefined ? "Select a key." : "Deleted."}</div>`;
    return;
  }
  const title = document.createElement("div");
  title.className = "key";
  title.textContent = keyText(kv);
  const pre = document.createElement("pre");
  pre.textContent = text(kv.value) ?? hex(kv.value);
  const dl = document.createElement("dl");
  for (const [k, v] of [["version", kv.version], ["create_revision", kv.createRevision], ["mod_revision", kv.modRevision], ["lease", kv.lease === 0n ? "none" : kv.lease.toString(16)]] as const) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = String(v);
    dl.append(dt, dd);
  }
  valueBox.replaceChildren(title, pre, dl);
}

function logEvent(type: string, key: string, revision: bigint): void {
  const li = document.createElement("li");
  li.className = type;
  li.textContent = `${type} ${key} @${revision}`;
  eventsList.prepend(li);
  while (eventsList.children.length > MAX_EVENTS) eventsList.lastElementChild!.remove();
}

/** Range the prefix, then watch it from the next revision until the prefix changes or the page goes. */
async function load(prefix: string, retryMs = RETRY_MS): Promise<void> {
  current?.abort();
  const abort = new AbortController();
  current = abort;
  try {
    setStatus("loading…");
    const res = await client.kv.range({ ...prefixRange(prefix), limit: BigInt(MAX_KEYS) }, { signal: abort.signal });
    keys = new Map(res.kvs.map((kv) => [keyText(kv), kv]));
    more = res.more;
    renderKeys();
    renderValue();
    const from = res.header!.revision + 1n;
    const watch = watchPrefix(client, prefix, {
      startRevision: from,
      signal: abort.signal,
      onCreated: () => {
        setStatus(`live · revision ${res.header!.revision}`, "live");
        retryMs = RETRY_MS;
      },
    });
    for await (const w of watch) {
      if (w.canceled) throw new Error(w.cancelReason || `watch canceled (compacted at ${w.compactRevision})`);
      let last: string | undefined;
      for (const ev of w.events) {
        const kv = ev.kv!;
        const k = keyText(kv);
        if (ev.type === Event_EventType.DELETE) keys.delete(k);
        else keys.set(k, kv);
        last = k;
        logEvent(ev.type === Event_EventType.DELETE ? "DELETE" : "PUT", k, kv.modRevision);
      }
      renderKeys(last);
      if (selected !== undefined && w.events.some((e) => keyText(e.kv!) === selected)) renderValue();
      setStatus(`live · revision ${w.header!.revision}`, "live");
    }
    if (!abort.signal.aborted) throw new Error("the watch ended");
  } catch (err) {
    if (abort.signal.aborted) return;
    setStatus(`${err instanceof Error ? err.message : String(err)} (retrying in ${Math.round(retryMs / 1000)} s)`, "error");
    setTimeout(() => { if (current === abort) void load(prefix, Math.min(retryMs * 2, RETRY_MAX_MS)); }, retryMs);
  }
}

const initial = new URLSearchParams(location.search).get("prefix") ?? "";
prefixInput.value = initial;
$<HTMLFormElement>("prefix-form").addEventListener("submit", (e) => {
  e.preventDefault();
  selected = undefined;
  const url = new URL(location.href);
  url.searchParams.set("prefix", prefixInput.value);
  history.replaceState(null, "", url);
  void load(prefixInput.value);
});
void load(initial);
