/**
 * CPU time and resident memory of a process and its descendants, from /proc (Linux): utime + stime from
 * /proc/<pid>/stat, VmRSS from /proc/<pid>/status. Descendants count because a target's command line may
 * be a launcher (deno/bun through a wrapper) whose child does the work.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (100 on every Linux we know, asked anyway). */
const CLK_TCK = (() => {
  try { return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100; } catch { return 100; }
})();

function read(path: string): string | undefined {
  try { return readFileSync(path, "utf8"); } catch { return undefined; }
}

/** pid and every descendant still alive. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[] = [];
    try { tasks = readdirSync(`/proc/${out[i]}/task`); } catch { continue; }
    for (const tid of tasks) {
      const children = read(`/proc/${out[i]}/task/${tid}/children`);
      if (children) for (const c of children.trim().split(/\s+/)) if (c) out.push(Number(c));
    }
  }
  return out;
}

/** CPU milliseconds (user + system) the process tree has used so far. */
export function cpuMs(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const stat = read(`/proc/${p}/stat`);
    if (!stat) continue;
    // Fields after the command (which may contain spaces) start after the last ')': utime is field 14.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / CLK_TCK;
}

/** Resident memory of the process tree, in MB. */
export function rssMB(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(read(`/proc/${p}/status`) ?? "");
    if (m) kb += Number(m[1]);
  }
  return kb / 1024;
}
