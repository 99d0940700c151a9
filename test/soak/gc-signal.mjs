// Preloaded into the soak's proxy only (NODE_OPTIONS=--import=...): SIGUSR2 runs a full garbage collection,
// so the soak compares memory the process holds, not garbage it has not collected yet. Production code
// has no such hook.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");
process.on("SIGUSR2", () => gc());
