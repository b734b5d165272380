import { createRequire } from 'node:module';

/** The package version, read from package.json so it can never disagree with npm. */
export const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
