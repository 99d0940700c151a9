/**
 * A DNS server on the loopback for --discovery-srv tests: answers SRV questions (type 33) from a table
 * the test sets, NXDOMAIN for every other name, and an empty answer for other types. UDP only, which is
 * what node:dns (c-ares) asks first; answers are far below 512 bytes. Stopped when the test ends.
 */
import { createSocket } from "node:dgram";

export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

export interface DnsServer {
  /** "127.0.0.1:port", for --discovery-srv-resolver. */
  addr: string;
  /** Records by lower-case name ("_etcd-client._tcp.etcd.test"); edit freely between queries. */
  records: Map<string, SrvRecord[]>;
  /** Every name asked, in order. */
  asked: string[];
  close(): Promise<void>;
}

interface Tap { teardown(fn: () => unknown): void }

const TYPE_SRV = 33;

export async function startDns(t: Tap | undefined): Promise<DnsServer> {
  const socket = createSocket("udp4");
  const records = new Map<string, SrvRecord[]>();
  const asked: string[] = [];
  socket.on("message", (msg, rinfo) => {
    const q = parseQuestion(msg);
    if (!q) return;
    asked.push(q.name);
    const found = records.get(q.name.toLowerCase());
    const answers = found && q.type === TYPE_SRV ? found : [];
    socket.send(answer(msg, q.end, found ? 0 : 3, answers), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  let closed = false;
  const close = () => new Promise<void>((resolve) => {
    if (closed) return resolve();
    closed = true;
    socket.close(() => resolve());
  });
  t?.teardown(close);
  return { addr: `127.0.0.1:${socket.address().port}`, records, asked, close };
}

function parseQuestion(msg: Buffer): { name: string; type: number; end: number } | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let i = 12;
  while (i < msg.length && msg[i] !== 0) {
    const len = msg[i]!;
    labels.push(msg.subarray(i + 1, i + 1 + len).toString("latin1"));
    i += 1 + len;
  }
  if (i + 5 > msg.length) return undefined;
  return { name: labels.join("."), type: msg.readUInt16BE(i + 1), end: i + 5 };
}

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, "").split(".").filter(Boolean);
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, "latin1")])), Buffer.from([0])]);
}

/** The response: the query's id and question, then one SRV answer per record (name by pointer to the question). */
function answer(query: Buffer, questionEnd: number, rcode: number, records: SrvRecord[]): Buffer {
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  header.writeUInt16BE(0x8180 | rcode, 2); // QR, RD, RA + rcode
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  const rrs = records.map((r) => {
    const target = encodeName(r.target);
    const rr = Buffer.alloc(12 + 6);
    rr.writeUInt16BE(0xc00c, 0); // the question's name
    rr.writeUInt16BE(TYPE_SRV, 2);
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(5, 6); // TTL
    rr.writeUInt16BE(6 + target.length, 10);
    rr.writeUInt16BE(r.priority, 12);
    rr.writeUInt16BE(r.weight, 14);
    rr.writeUInt16BE(r.port, 16);
    return Buffer.concat([rr, target]);
  });
  return Buffer.concat([header, query.subarray(12, questionEnd), ...rrs]);
}
