/** Free loopback ports and polling, for starting servers: the test suite's helpers, shared. */
export { freePort, portOpen, sleep, waitFor } from "../../test/helpers/ports.js";
