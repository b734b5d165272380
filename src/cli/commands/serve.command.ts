import type { Command } from 'commander';

import type { CliContext } from '../context.js';
import { collect, jsonOption, parseLeaseSeconds } from '../flags.js';

export interface ServeFlags {
  config?: string;
  upstream: string[];
  listen?: string;
  publicUrl?: string;
  refresher: boolean;
  leaseTtl?: number;
  jwtIssuer?: string;
  jwtAudience?: string;
  jwtJwksUri?: string;
  tlsCert?: string;
  tlsKey?: string;
  portalSignInUrl?: string;
  allowReturnTo?: string[];
}

const SERVE_HELP = `
Serves an HTTP API for applications (any language) whose users connect remote MCP servers:
connect links, tokens, connection states and disconnect (docs/serve.md). Calls to /v1 need
an app key (latchkey serve keys create). With --store postgres://… any number of instances
share the work, and each runs the refresher.

Examples:
  latchkey serve keys create --name my-portal
  latchkey serve --upstream notion=https://mcp.notion.com/mcp --public-url https://gw.example.com
  latchkey serve --config serve.json --listen 0.0.0.0:8787 --store postgres://db/latchkey`;

/** Who may call and how they reach it: JWTs, TLS, return_to origins, the portal's sign-in page. */
function accessOptions(command: Command): Command {
  return command
    .option(
      '--jwt-issuer <url>',
      "accept users' JWTs from this issuer on /mcp/{upstream} (with --jwt-audience)",
    )
    .option('--jwt-audience <aud>', 'the audience those JWTs must carry')
    .option('--jwt-jwks-uri <url>', "the issuer's JWKS (default: its metadata's jwks_uri)")
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain); needs --tls-key')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option(
      '--allow-return-to <origin>',
      'an origin return_to may name; repeatable (default: any)',
      collect,
      [],
    )
    .option(
      '--portal-sign-in-url <url>',
      "the application's page that signs a user in and opens their portal link",
    );
}

export function register(program: Command, { io }: CliContext): void {
  const command = program
    .command('serve')
    .description('run the credential service for many users: an HTTP API over the store (docs/serve.md)')
    .option('--config <file>', 'JSON file of upstreams (docs/serve.md)')
    .option('--upstream <id=url>', 'an upstream MCP server; repeatable', collect, [])
    .option('--listen <host:port>', 'where to listen (default 127.0.0.1:8787)')
    .option(
      '--public-url <url>',
      'the externally visible base URL, for the OAuth callback and links (default: the listen address)',
    )
    .option('--no-refresher', 'do not run the refresher in this instance')
    .option(
      '--lease-ttl <seconds>',
      "how soon other instances take over a killed instance's refreshes (default 45)",
      parseLeaseSeconds,
    );
  const serve = accessOptions(command)
    .addHelpText('after', SERVE_HELP)
    .action(async (opts: ServeFlags) => {
      const { runServe } = await import('./serve.js');
      await runServe(io, opts);
    });
  const keys = serve.command('keys').description('manage the app keys allowed to call the API');
  keys
    .command('create')
    .description('create an app key; it is printed once and only its digest is stored')
    .requiredOption('--name <app>', 'the application the key is for')
    .option(
      '--subject-prefix <prefix>',
      'the key may only name subjects starting with this, e.g. owui: (default: every subject)',
    )
    .addOption(jsonOption('print { id, name, subject_prefix, key } as JSON'))
    .action(async (opts: { name: string; subjectPrefix?: string; json: boolean }) => {
      const { createKey } = await import('./serve.js');
      await createKey(io, opts);
    });
  keys
    .command('list')
    .description('list app keys (ids, names and scopes; keys themselves are not stored)')
    .addOption(jsonOption('print JSON'))
    .action(async (opts: { json: boolean }) => {
      const { listKeys } = await import('./serve.js');
      await listKeys(io, opts);
    });
  keys
    .command('delete <id>')
    .description('delete an app key; calls with it are refused at once')
    .action(async (id: string) => {
      const { deleteKey } = await import('./serve.js');
      await deleteKey(io, id);
    });
}
