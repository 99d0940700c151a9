/** Bun's version floor: 1.4 serves HTTP/1.1 on a handed-over socket and under TLS; 1.3 does not. */
import t from "tap";
import { bunUnsupported } from "../../src/runtime/bun.js";

t.test("Bun >= 1.4 is accepted, older refused with the reason", async (t) => {
  for (const v of ["1.4.0", "1.4.5", "1.10.0", "2.0.0"]) t.equal(bunUnsupported(v), undefined, v);
  for (const v of ["1.3.9", "1.0.0", "0.8.1"]) t.match(bunUnsupported(v), /needs Bun >= 1\.4/, v);
});
