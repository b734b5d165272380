import { spawn } from 'node:child_process';

import { LOCAL_SUBJECT } from '../../credential/key.js';
import { openSync, writeSync } from 'node:fs';

import type { AcquireHook } from '../../lifecycle/acquire.js';
import { CredentialManager } from '../../lifecycle/manager.js';
import { createLogger, type Logger, type LogLevel } from '../../log.js';
import { McpConnection, type TransportStrategy } from '../../mcp/connection.js';
import {
  deviceLoginFailedEvent,
  deviceLoginThroughAgent,
  devicePromptEvent,
  isLogout,
} from '../../proxy/device-agent.js';
import type { CredentialStore } from '../../store/contract.js';
import {
  createProxyAuthorizer,
  type ProxyAuthorizer,
  type ProxyLoginPolicy,
} from '../../proxy/authorizer.js';
import { announcePresence } from '../../proxy/presence.js';
import { runStdioRelay } from '../../proxy/stdio.js';
import { newLeaseHolder } from '../../lifecycle/lease.js';
import { openStore } from '../../store/open.js';
import type { CliIO } from '../io.js';
import type * as LoginFlows from '../login-hook.js';
import type { LoginOptions } from '../login-hook.js';
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
  const store = await openStore(undefined, { env: io.env });
  if (store.security.warning !== undefined) logger.warn(store.security.warning);
  if (staticAuth) logger.warn('an Authorization header was given: latchkey sends it as is and does no OAuth');
  // The login hook is built before the authorizer that listens to its prompts.
  const sinks: PromptSinks = { onDevicePrompt: () => undefined, onBrowserUnavailable: () => undefined };
  const manager = proxyManager(io, store, logger, options, sinks);
  if (options.loginAgent === true) {
    await runLoginAgent(manager, store, server, options, (handler) => (sinks.onDevicePrompt = handler));
    return;
  }
  const authorizer = proxyAuthorizer(io, { manager, store, server, logger }, options);
  sinks.onDevicePrompt = authorizer.onDevicePrompt;
  sinks.onBrowserUnavailable = authorizer.onBrowserUnavailable;
  const connection = new McpConnection({
    server,
    manager,
    transport: options.transport,
    ...(options.protocol === undefined ? {} : { protocol: options.protocol }),
    headers,
    // A way back to Node's fetch, should a server or a network in between need it.
    ...(io.env['LATCHKEY_HTTP_CLIENT'] === 'fetch' ? { httpClient: 'fetch' as const } : {}),
    authenticate: !staticAuth,
    requestTimeoutMs: options.requestTimeoutMs,
    ...(options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }),
    authorize: authorizer.authorize,
    logger,
    describeNext: renderNextStep,
  });
  await relayUntilHangup(connection, { manager, store, server, logger }, options.transport);
}

/** Where the login hook's prompts go: set once the authorizer (or the agent) exists. */
interface PromptSinks {
  onDevicePrompt: NonNullable<LoginOptions['onDevicePrompt']>;
  onBrowserUnavailable: NonNullable<LoginOptions['onBrowserUnavailable']>;
}

/** What the proxy's parts share once the store is open. */
interface ProxyParts {
  manager: CredentialManager;
  store: CredentialStore;
  server: string;
  logger: Logger;
}

/** The process's manager, whose login hook is built on the first login this proxy runs. */
function proxyManager(
  io: CliIO,
  store: CredentialStore,
  logger: Logger,
  options: ProxyCommandOptions,
  sinks: PromptSinks,
): CredentialManager {
  const manager: CredentialManager = new CredentialManager({
    store,
    logger,
    sendResource: options.sendResource,
    loginTimeoutMs: options.loginTimeoutMs,
    acquire: deferredHook(async () => {
      const flows = await loginFlows();
      return flows.createLoginHook({
        ...options.loginOptions,
        // A `login --idp` session authorizes servers whose AS takes ID-JAGs, with no browser.
        idp: flows.storedIdpSession(() => manager),
        store,
        notify: io.err,
        onDevicePrompt: (prompt, forServer) => sinks.onDevicePrompt(prompt, forServer),
        onBrowserUnavailable: (url, forServer) => sinks.onBrowserUnavailable(url, forServer),
      });
    }),
  });
  return manager;
}

/**
 * Logins for the host: in this process through the hook, or, for the device flow, in a
 * detached agent that outlives this process (see device-agent.ts).
 */
function proxyAuthorizer(io: CliIO, parts: ProxyParts, options: ProxyCommandOptions): ProxyAuthorizer {
  const { manager, store, server, logger } = parts;
  const scopes = options.scopes === undefined ? {} : { scopes: options.scopes };
  return createProxyAuthorizer({
    manager,
    server,
    login: options.login,
    ...scopes,
    runLogin: async (onPrompt) => {
      const { chooseFlow, stderrDevicePrompt } = await loginFlows();
      if (chooseFlow(options.loginOptions, io.env) !== 'device') {
        await manager.getToken(server, { interactive: true, ...scopes });
        return;
      }
      const showPrompt = stderrDevicePrompt({ server, write: io.err });
      await deviceLoginThroughAgent(
        { manager, store, server, spawnAgent: () => spawnAgent(io, logger) },
        (p) => {
          showPrompt(p);
          onPrompt(p);
        },
      );
    },
  });
}

/** Relay until the host hangs up or a signal arrives, then leave the store as it should be. */
async function relayUntilHangup(
  connection: McpConnection,
  parts: ProxyParts,
  transport: TransportStrategy,
): Promise<void> {
  const { manager, store, server, logger } = parts;
  const leaveStore = announcePresence(store, server, newLeaseHolder());
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  logger.info('proxy ready', { transport });
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

/**
 * The login flows, loaded the first time this process needs a login: a proxy whose
 * credential is valid (the usual start) never pays for them.
 */
let flows: Promise<typeof LoginFlows> | undefined;
function loginFlows(): Promise<typeof LoginFlows> {
  return (flows ??= import('../login-hook.js'));
}

/** A hook built on its first call, so that building it costs nothing until a login runs. */
function deferredHook(build: () => Promise<AcquireHook>): AcquireHook {
  let hook: Promise<AcquireHook> | undefined;
  return async (request) => (await (hook ??= build()))(request);
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
