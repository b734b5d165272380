import { readFileSync } from 'node:fs';

import { ErrorCode, LatchkeyError } from '../../errors.js';
import { createAppKey } from '../../serve/app-keys.js';
import { checkedSubjectPrefix, scopeText } from '../../serve/scopes.js';
import {
  mergeUpstreams,
  parseListen,
  parsePortalSignInUrl,
  parsePublicUrl,
  parseReturnToOrigin,
  parseUpstreamFlag,
  readConfigFile,
  type UpstreamConfig,
} from '../../serve/config.js';
import { jwtSettings } from '../../serve/jwt.js';
import { startServe } from '../../serve/server.js';
import type { CredentialStore } from '../../store/contract.js';
import { hasServeTables, type ServeStore } from '../../store/serve-contract.js';
import type { CliIO } from '../io.js';
import { withStore } from '../open-store.js';
import type { ServeFlags } from './serve.command.js';
import { signalled } from '../signals.js';

export interface RunServeOptions extends ServeFlags {
  /** Resolves when the service should stop. Default: SIGINT or SIGTERM. */
  until?: Promise<void>;
}

/** `latchkey serve`: the HTTP API until SIGINT/SIGTERM, then a graceful stop. */
export async function runServe(io: CliIO, options: RunServeOptions): Promise<void> {
  const upstreams = upstreamsOf(io, options);
  const jwt = jwtSettings(options.config, options);
  await withStore(
    io,
    async (store) => {
      const running = await startServe({
        store: serveStore(store),
        upstreams,
        ...(options.listen === undefined ? {} : { listen: parseListen(options.listen) }),
        ...(options.publicUrl === undefined ? {} : { publicUrl: parsePublicUrl(options.publicUrl) }),
        refresher: options.refresher,
        ...(options.leaseTtl === undefined ? {} : { leaseTtlMs: options.leaseTtl * 1000 }),
        ...(jwt === undefined ? {} : { jwt }),
        ...tlsOf(options),
        ...(options.allowReturnTo === undefined || options.allowReturnTo.length === 0
          ? {}
          : { returnToOrigins: options.allowReturnTo.map(parseReturnToOrigin) }),
        ...(options.portalSignInUrl === undefined
          ? {}
          : { portalSignInUrl: parsePortalSignInUrl(options.portalSignInUrl) }),
      });
      io.err(`latchkey serve: listening on ${running.url} (public ${running.publicUrl}); Ctrl-C to stop\n`);
      try {
        await (options.until ?? signalled());
      } finally {
        await running.close();
      }
    },
    'write',
  );
}

/** Read when the service starts, so a missing or unreadable file fails before anything listens. */
function tlsOf(options: ServeFlags): { tls?: { cert: Buffer; key: Buffer } } {
  if (options.tlsCert === undefined && options.tlsKey === undefined) return {};
  if (options.tlsCert === undefined || options.tlsKey === undefined) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, '--tls-cert and --tls-key go together.', {
      retryable: false,
      next: { kind: 'configure', detail: 'pass both, or neither for plain HTTP behind a TLS proxy' },
    });
  }
  return { tls: { cert: readPem(options.tlsCert, 'certificate'), key: readPem(options.tlsKey, 'key') } };
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, `cannot read the TLS ${what} file ${file}.`, {
      retryable: false,
      next: { kind: 'configure', detail: `check the path and its permissions` },
      cause: error,
    });
  }
}

function upstreamsOf(io: CliIO, options: ServeFlags): UpstreamConfig[] {
  const fromFile = options.config === undefined ? [] : readConfigFile(options.config, io.env);
  const upstreams = mergeUpstreams(fromFile, options.upstream.map(parseUpstreamFlag));
  if (upstreams.length === 0) {
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, 'no upstream MCP servers are configured.', {
      retryable: false,
      next: { kind: 'configure', detail: 'pass --upstream <id>=<url> or --config <file> (docs/serve.md)' },
    });
  }
  return upstreams;
}

function serveStore(store: CredentialStore): ServeStore {
  if (hasServeTables(store)) return store;
  throw new LatchkeyError(ErrorCode.INVALID_INPUT, `the ${store.kind} store cannot hold what serve needs.`, {
    retryable: false,
    next: { kind: 'configure', detail: 'use the SQLite or Postgres store' },
  });
}

export async function createKey(
  io: CliIO,
  options: { name: string; subjectPrefix?: string; json: boolean },
): Promise<void> {
  const subjectPrefix = flagPrefix(options.subjectPrefix);
  await withStore(
    io,
    async (store) => {
      const { record, key } = await createAppKey(serveStore(store), options.name, { subjectPrefix });
      if (options.json) {
        const row = { id: record.id, name: record.name, subject_prefix: record.subjectPrefix ?? null, key };
        io.out(JSON.stringify(row) + '\n');
      } else {
        io.err(
          `Created app key ${record.id} for ${record.name} (${scopeText(record)}). It is shown once; only its digest is stored.\n`,
        );
        io.out(`${key}\n`);
      }
    },
    'write',
  );
}

export async function listKeys(io: CliIO, options: { json: boolean }): Promise<void> {
  await withStore(io, async (store) => {
    const keys = hasServeTables(store) ? await store.listAppKeys() : [];
    if (options.json) {
      const rows = keys.map((k) => ({
        id: k.id,
        name: k.name,
        subject_prefix: k.subjectPrefix ?? null,
        created_at: new Date(k.createdAt).toISOString(),
      }));
      io.out(JSON.stringify(rows) + '\n');
      return;
    }
    if (keys.length === 0) io.err('No app keys. Create one with: latchkey serve keys create --name <app>\n');
    for (const k of keys) {
      io.out(`${k.id}  ${k.name}  ${scopeText(k)}  created ${new Date(k.createdAt).toISOString()}\n`);
    }
  });
}

export async function deleteKey(io: CliIO, id: string): Promise<void> {
  await withStore(
    io,
    async (store) => {
      if (!(await serveStore(store).deleteAppKey(id))) {
        throw new LatchkeyError(ErrorCode.INVALID_INPUT, `no app key has the id ${JSON.stringify(id)}.`, {
          retryable: false,
          next: { kind: 'configure', detail: 'list the keys to find its id' },
        });
      }
      io.err(`Deleted app key ${id}.\n`);
    },
    'write',
  );
}

/** --subject-prefix checked before the store is opened, its error naming the flag. */
function flagPrefix(prefix: string | undefined): string | undefined {
  if (prefix === undefined) return undefined;
  try {
    return checkedSubjectPrefix(prefix);
  } catch (error) {
    if (!(error instanceof LatchkeyError)) throw error;
    throw new LatchkeyError(ErrorCode.INVALID_INPUT, `--subject-prefix: ${error.message}`, {
      retryable: false,
      next: {
        kind: 'configure',
        detail: 'give --subject-prefix such as owui: or leave it out for every subject',
      },
    });
  }
}
