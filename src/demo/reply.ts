import type { ServerResponse } from 'node:http';

/** Answer with a JSON body; every harness server replies this way. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
