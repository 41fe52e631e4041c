// node:http for ESM code, without Node's own WebSocket client. An ESM import of a built-in reads
// every export to build the module namespace, and http.WebSocket (with CloseEvent and
// MessageEvent) is a lazy getter that loads Node's bundled undici: 9 MB of RSS and about 50 ms of
// start-up, for a client nothing here uses. process.getBuiltinModule hands back the exports object
// itself, so the getter is never read. Types still come from `import type ... from 'node:http'`.
export const http = process.getBuiltinModule('node:http');
