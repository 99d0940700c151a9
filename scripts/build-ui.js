#!/usr/bin/env node
// Part of `npm run build`: bundles the --ui page's script (src/ui/app.ts, with the browser client and the
// generated etcd types it imports) into dist/ui/app.js, where src/http/ui.ts serves it from. ES2020 is
// the floor: protobuf-es needs BigInt.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

await build({
  absWorkingDir: root,
  entryPoints: ["src/ui/app.ts"],
  outfile: "dist/ui/app.js",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  minify: true,
  legalComments: "eof",
  logLevel: "warning",
});
