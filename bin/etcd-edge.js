#!/usr/bin/env node
// The compiled proxy (npm ci runs `prepare`, which builds dist/).
import "../dist/src/main.js";
