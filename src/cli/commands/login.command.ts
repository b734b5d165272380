import type { Command } from 'commander';

import type { CliContext } from '../context.js';
import {
  authParamOption,
  clientIdOption,
  workloadTokenFileOption,
  clientMetadataUrlOption,
  noDpopOption,
  offlineAccessOption,
  portOption,
} from '../flags.js';
import { type LoginFlags, loginOptionsFromFlags, scopeList } from '../login-flags.js';
import { checkedServer } from '../server-args.js';

export function register(program: Command, { io }: CliContext): void {
  program
    .command('login')
    .description(
      'log in to a remote MCP server (browser, or device code when headless) and store the credential',
    )
    .argument('<server>', "MCP server URL (with --idp: the identity provider's issuer)")
    .option(
      '--idp',
      'sign in to an enterprise identity provider (SEP-990): servers whose authorization server accepts its ID-JAGs are then authorized with no browser',
    )
    .option('--device', 'use the device flow (a code to enter on another device)')
    .option('--browser', 'use the browser even where latchkey would pick the device flow')
    .option('--client-credentials', 'machine-to-machine: client id + secret from LATCHKEY_CLIENT_SECRET')
    .addOption(clientIdOption())
    .addOption(workloadTokenFileOption())
    .addOption(clientMetadataUrlOption())
    .option('--scope <scopes>', 'space-separated scopes to request (default: what the server advertises)')
    .addOption(portOption())
    .addOption(authParamOption())
    .addOption(offlineAccessOption())
    .addOption(noDpopOption())
    .option('--no-resource', 'do not send the RFC 8707 resource parameter (Microsoft Entra v2)')
    .option('--disable-resource-parameter', 'the same as --no-resource (the name `proxy` uses)')
    .addHelpText(
      'after',
      '\nExamples:\n  latchkey login https://mcp.example.com/mcp\n  latchkey login https://mcp.example.com/mcp --device\n  LATCHKEY_CLIENT_SECRET=... latchkey login https://mcp.example.com/mcp --client-credentials --client-id my-service',
    )
    .action(async (server: string, opts: LoginFlags) => {
      checkedServer(server); // a typo must not create the store on its way to failing
      // One switch, two spellings: `login` and `proxy` each accept the other's.
      if (opts.disableResourceParameter === true) opts.resource = false;
      const loginOptions = loginOptionsFromFlags(io, opts);
      if (opts.idp === true) loginOptions.idpLogin = server;
      const { runLogin } = await import('./login.js');
      await runLogin(io, {
        server,
        scopes: scopeList(opts.scope),
        sendResource: opts.resource,
        loginOptions,
      });
    });
}
