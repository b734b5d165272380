// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

// Layer order, bottom to top. A file may import its own layer and the layers below it, never
// one above: the picture in docs/architecture.md stays true because CI fails otherwise.
// `mcp` and `login` sit side by side above the lifecycle and may not import each other.
// `serve` (the HTTP gateway, docs/serve.md) sits above proxy and below demo and cli.
const LAYERS = [
  ['credential'],
  ['store'],
  ['oauth'],
  ['lifecycle'],
  ['login', 'mcp'],
  ['proxy'],
  ['serve'],
  ['demo'],
  ['cli'],
];
const ALL = LAYERS.flat();

/** One no-restricted-imports block per src folder, naming the folders it must not reach. */
function layerRules() {
  const blocks = LAYERS.flatMap((layer, level) =>
    layer.map((folder) => {
      const above = LAYERS.slice(level + 1).flat();
      const siblings = layer.filter((other) => other !== folder);
      return restrict([`src/${folder}/**/*.ts`], [...above, ...siblings], folder);
    }),
  );
  // The base modules (errors, log, network-text, next-action, body) sit under everything.
  blocks.push(restrict(['src/*.ts'], ALL, 'base', ['src/index.ts']));
  return blocks;
}

function restrict(files, forbidden, name, ignores = []) {
  const folders = forbidden.join('|');
  return {
    files,
    ignores,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: `^(\\./|(\\.\\./)+)(${folders})/`,
              message: `layer rule: ${name} may not import ${forbidden.join(', ')} (docs/architecture.md, Layers)`,
            },
          ],
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/', '.scratch/', 'node_modules/', 'coverage/', '.cache/', 'test-results/', '**/*.cjs'] },
  js.configs.recommended,
  { languageOptions: { globals: { ...globals.node } } },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Tokens must flow through the redacting logger, never straight to the console.
      'no-console': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // Tests, benchmarks, harness and scripts print progress on purpose.
    files: ['test/**', 'bench/**', 'scripts/**', 'examples/**'],
    rules: { 'no-console': 'off' },
  },
  ...layerRules(),
);
