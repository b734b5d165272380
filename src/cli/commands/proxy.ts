import { spawn } from 'node:child_process';

import { LOCAL_SUBJECT } from '../../credential/key.js';
import { openSync, writeSync } from 'node:fs';

import { CredentialManager } from '../../lifecycle/manager.js';
import { createLogger, type Logger, type LogLevel } from '../../log.js';
import { McpConnection, type TransportStrategy } from '../../mcp/connection.js';
import { chooseFlow, createLoginHook, type LoginOptions } from '../../login/login.js';
import { stderrDevicePrompt } from '../../login/device-prompt.js';
import {
  deviceLoginFailedEvent,
  deviceLoginThroughAgent,
  devicePromptEvent,
  isLogout,
} from '../../proxy/device-agent.js';
import type { CredentialStore } from '../../store/contract.js';
import { createProxyAuthorizer, type ProxyLoginPolicy } from '../../proxy/authorizer.js';
import { announcePresence } from '../../proxy/presence.js';
import { runStdioRelay } from '../../proxy/stdio.js';
import { newLeaseHolder } from '../../lifecycle/lease.js';
import { openSqliteStore } from '../../store/sqlite.js';
import type { CliIO } from '../io.js';
import { renderNextStep } from '../next-step.js';
import { checkedServer, parseHeaders } from '../server-args.js';

export interface ProxyCommandOptions {
  server: string;
  /** Raw `Name: value` pairs; `${VAR}` is expanded from the environment. */
  headers: readonly string[];
  transport: TransportStrategy;
  /** `auto`: bridge 2025-era hosts to 2026-only servers (era-bridge.ts); `legacy`: never. */
  protocol?: 'auto' | 'legacy';
  login: ProxyLoginPolicy;
  /** The login hook's settings, minus the store (opened here). */
  loginOptions: Omit<LoginOptions, 'store' | 'onDevicePrompt' | 'onBrowserUnavailable'>;
  scopes?: readonly string[];
  sendResource: boolean;
  requestTimeoutMs: number;
  /** Bytes one message from the server may have. Default 32 MiB (McpConnection's default). */
  maxMessageBytes?: number;
  loginTimeoutMs: number;
  logLevel: LogLevel;
  logFile?: string;
  /** Internal: this process is the detached device-login agent of a proxy (device-agent.ts). */
  loginAgent?: boolean;
}

/**
 * Relay MCP between the host on stdio and the remote server until the host hangs up. Errors
 * before the relay starts (bad URL, unusable store) are thrown; after that, failures reach
 * the host as JSON-RPC errors and stderr lines, and the proxy keeps serving.
 */
export async function proxy(io: CliIO, options: ProxyCommandOptions): Promise<void> {
  const server = checkedServer(options.server);
  const headers = parseHeaders(options.headers, io.env, server);
  const staticAuth = Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
  const logger = createLogger({ level: options.logLevel, write: logWriter(io, options.logFile) }, { server });
  const store = await openSqliteStore({ env: io.env });
  if (store.security.warning !== undefined) logger.warn(store.security.warning);
  if (staticAuth) logger.warn('an Authorization header was given: latchkey sends it as is and does no OAuth');
  // The login hook is built before the authorizer that listens to its device prompts.
  let onDevicePrompt: NonNullable<LoginOptions['onDevicePrompt']> = () => undefined;
  let onBrowserUnavailable: NonNullable<LoginOptions['onBrowserUnavailable']> = () => undefined;
  const manager = new CredentialManager({
    store,
    logger,
    sendResource: options.sendResource,
    loginTimeoutMs: options.loginTimeoutMs,
    acquire: createLoginHook({
      ...options.loginOptions,
      store,
      notify: io.err,
      onDevicePrompt: (prompt, forServer) => onDevicePrompt(prompt, forServer),
      onBrowserUnavailable: (url, forServer) => onBrowserUnavailable(url, forServer),
    }),
  });
  if (options.loginAgent === true) {
    await runLoginAgent(manager, store, server, options, (handler) => (onDevicePrompt = handler));
    return;
  }
  // Device logins run in a detached agent that outlives this process (see device-agent.ts).
  const viaAgent = chooseFlow(options.loginOptions, io.env) === 'device';
  const showPrompt = stderrDevicePrompt({ server, write: io.err });
  const authorizer = createProxyAuthorizer({
    manager,
    server,
    login: options.login,
    ...(options.scopes === undefined ? {} : { scopes: options.scopes }),
    ...(viaAgent
      ? {
          runLogin: (onPrompt) =>
            deviceLoginThroughAgent(
              { manager, store, server, spawnAgent: () => spawnAgent(io, logger) },
              (p) => {
                showPrompt(p);
                onPrompt(p);
              },
            ),
        }
      : {}),
  });
  onDevicePrompt = authorizer.onDevicePrompt;
  onBrowserUnavailable = authorizer.onBrowserUnavailable;
  const connection = new McpConnection({
    server,
    manager,
    transport: options.transport,
    ...(options.protocol === undefined ? {} : { protocol: options.protocol }),
    headers,
    authenticate: !staticAuth,
    requestTimeoutMs: options.requestTimeoutMs,
    ...(options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }),
    authorize: authorizer.authorize,
    logger,
    describeNext: renderNextStep,
  });
  const leaveStore = announcePresence(store, server, newLeaseHolder());
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  logger.info('proxy ready', { transport: options.transport });
  try {
    await runStdioRelay({ connection, logger, signal: stop.signal });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await leaveStore();
    await manager.settle();
    manager.close();
    await store.close();
  }
}

/**
 * The agent: log in once (publishing the device prompt to the store), then exit. Nobody
 * reads its stdio; its log goes to --log-file when one was given.
 */
async function runLoginAgent(
  manager: CredentialManager,
  store: CredentialStore,
  server: string,
  options: ProxyCommandOptions,
  setPromptHandler: (handler: NonNullable<LoginOptions['onDevicePrompt']>) => void,
): Promise<void> {
  setPromptHandler((prompt, forServer) => {
    if (forServer !== server) return;
    void store.appendEvent(devicePromptEvent(server, LOCAL_SUBJECT, prompt)).catch(() => undefined);
  });
  // A logout while the user has not approved yet ends the login (see cancelDeviceLogin).
  const stop = new AbortController();
  manager.on('event', (event) => {
    if (event.server === server && isLogout(event)) stop.abort();
  });
  try {
    await manager.login(server, {
      signal: stop.signal,
      ...(options.scopes === undefined ? {} : { scopes: options.scopes }),
    });
  } catch (error) {
    // The proxies waiting on this agent tell their hosts why, not only that it ended.
    if (!stop.signal.aborted) {
      await store.appendEvent(deviceLoginFailedEvent(server, LOCAL_SUBJECT, error)).catch(() => undefined);
    }
    throw error;
  } finally {
    await manager.settle();
    manager.close();
    await store.close();
  }
}

/** Start this same command line again as a detached login agent. */
function spawnAgent(io: CliIO, logger: Logger): number | undefined {
  const argv = process.argv.slice(1);
  const child = spawn(process.execPath, [...process.execArgv, ...argv, '--login-agent'], {
    detached: true,
    stdio: 'ignore',
    env: io.env,
  });
  child.on('error', (error) => logger.warn(`could not start the device login: ${error.message}`));
  child.unref();
  logger.debug('device login agent started', { pid: child.pid ?? -1 });
  return child.pid;
}

/** Log lines go to stderr, and to a 0600 file when asked. */
function logWriter(io: CliIO, file: string | undefined): (line: string) => void {
  if (file === undefined) return (line) => io.err(line + '\n');
  const fd = openSync(file, 'a', 0o600);
  return (line) => {
    io.err(line + '\n');
    writeSync(fd, line + '\n');
  };
}
