/**
 * `npm run bench -- fuzz [--runs=2000] [--seed=N]`: the fuzzers (test/fuzz/*.test.ts: client input on
 * every entry point, etcd's answers) with a larger budget than CI's 60 inputs per property. Prints the
 * inputs tried per property and any counterexample with its seed and path (replay with FUZZ_SEED and
 * fast-check's path), and exits 1 if any property failed.
 */
import { runTestFile } from "./soak.js";

const FILES = ["test/fuzz/client-input.test.ts", "test/fuzz/etcd-answers.test.ts"];

export async function main(args: string[]): Promise<number> {
  const runs = Number(args.find((a) => a.startsWith("--runs="))?.slice("--runs=".length) ?? 2000);
  if (!(runs > 0)) throw new Error(`--runs must be a positive number, not ${runs}`);
  const seed = args.find((a) => a.startsWith("--seed="))?.slice("--seed=".length);
  let failed = 0;
  for (const file of FILES) {
    const code = await runTestFile(file, { FUZZ_RUNS: String(runs), ...(seed ? { FUZZ_SEED: seed } : {}) }, (line) => /^\s*# Subtest:/.test(line) || /^\s*(not )?ok \d+ - (\d+ (inputs|answers), seed|failed)/.test(line));
    if (code !== 0) failed++;
  }
  return failed === 0 ? 0 : 1;
}
