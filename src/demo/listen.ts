import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * Listen on 127.0.0.1 and return the origin: on an ephemeral port by default, or on `port`
 * (a server restarted where its predecessor listened). Every harness server binds to
 * loopback only: tests must never be reachable from (or reach) the network.
 */
export async function listenOnLoopback(server: Server, port = 0): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://127.0.0.1:${address.port}`;
}

/**
 * Close a server even when clients still hold keep-alive or hanging connections (a held or
 * timed-out request, an open SSE stream): tests must be able to tear down in any state.
 */
export async function closeServer(server: Server, sockets?: Set<Socket>): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  for (const socket of sockets ?? []) socket.destroy();
  await closed;
}

/** Keep track of open sockets so that close() can destroy the ones http does not know about. */
export function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}
