/** Runs Debian's etcdctl (API v3) and returns what it printed. */
import { spawn } from "node:child_process";

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function etcdctl(endpoint: string, args: string[], o: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<CtlResult> {
  return new Promise((resolve) => {
    const proc = spawn("etcdctl", [`--endpoints=${endpoint}`, ...args], {
      env: { ...process.env, ETCDCTL_API: "3", ...o.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
    proc.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => proc.kill("SIGKILL"), o.timeoutMs ?? 20_000);
    proc.on("exit", (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    // etcdctl may exit before reading stdin (most commands never read it): its exit code says what happened.
    proc.stdin.on("error", () => {});
    proc.stdin.end(o.input ?? "");
  });
}
