/**
 * `npm run bench -- <name> [args]` runs bench/<name>.ts. Each bench prints human-readable lines, or with --json one
 * JSON object per line.
 */
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// Modules the benches share, not benches themselves.
const HELPERS = new Set([
  'main.js',
  'backend-child.js',
  'methods-jobs.js',
  'methods-run.js',
  'methods-stats.js',
  'methods-summary.js',
]);
const available = readdirSync(here)
  .filter((f) => f.endsWith('.js') && !HELPERS.has(f))
  .map((f) => f.replace(/\.js$/, ''))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || name === '--help' || !available.includes(name)) {
  console.error(`usage: npm run bench -- <${available.join('|')}> [options]   (each takes --help)`);
  process.exit(name && name !== '--help' ? 2 : 0);
}
const mod = (await import(`./${name}.js`)) as { main: (args: string[]) => Promise<void> };
await mod.main(args);
