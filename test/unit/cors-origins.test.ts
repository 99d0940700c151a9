/** --cors-allowed-origins parsing (config/options.ts parseOrigins): exact origins, `*` alone, typos refused. */
import t from "tap";
import { FlagError } from "../../src/config/flags.js";
import { parseOrigins } from "../../src/config/options.js";

t.test("origins as browsers send them", async (t) => {
  t.same(parseOrigins(""), [], "none by default");
  t.same(parseOrigins("https://app.example.com, http://127.0.0.1:8080"), ["https://app.example.com", "http://127.0.0.1:8080"]);
  t.same(parseOrigins("HTTPS://App.Example.com/"), ["https://app.example.com"], "case and a trailing slash as the browser normalises them");
  t.same(parseOrigins("https://a.example:443,http://b.example:80"), ["https://a.example", "http://b.example"], "default ports dropped");
  t.same(parseOrigins("*"), ["*"]);
});

t.test("anything else is refused with the flag's name", async (t) => {
  for (const bad of ["*,https://a.example", "https://a.example/path", "a.example", "ftp://a.example", "http://", "https://a.example?x=1", "https://user@a.example"]) {
    t.throws(() => parseOrigins(bad), FlagError, bad);
    t.throws(() => parseOrigins(bad), /--cors-allowed-origins/, bad);
  }
});
