// oidc-provider ships no type declarations and @types/oidc-provider is not a dependency, so
// this declares the small surface the harness uses. Configuration stays loosely typed: it is
// validated by oidc-provider itself at construction.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** The koa context as the harness sees it. `oidc` exists only on oidc-provider routes. */
  export interface ProviderContext {
    method: string;
    path: string;
    status: number;
    body: unknown;
    oidc?: OidcContext;
  }

  export interface OidcContext {
    /** Route name: `token`, `revocation`, `introspection`, `device_authorization`, ... */
    route?: string;
    params?: Record<string, unknown>;
    entities: Record<string, unknown>;
  }

  export type ProviderMiddleware = (ctx: ProviderContext, next: () => Promise<void>) => Promise<void>;

  export default class Provider {
    constructor(issuer: string, configuration?: object);
    readonly issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    use(middleware: ProviderMiddleware): this;
    registerGrantType(type: string, handler: ProviderMiddleware, params?: string[]): void;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }

  export const errors: {
    InvalidGrant: new (detail?: string) => Error;
    InvalidTarget: new (detail?: string) => Error;
  };
}
