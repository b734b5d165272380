// `npm run build` starts from an empty dist/: a module deleted or moved in src/ must not
// live on in dist/, where the package (and the import-cost test) would still find it.
import { rmSync } from 'node:fs';

rmSync(new URL('../dist/', import.meta.url), { recursive: true, force: true });
