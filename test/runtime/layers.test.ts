/**
 * Layers point one way: the library (src/) imports neither process folder (coordinator/, workers/), and telemetry
 * does not import the CLI. The processes' entry points do import the library.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/test/runtime). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function sources(dir: string): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f));
}

/** Every relative module a file imports (static or dynamic), resolved to a repository path. */
function imports(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs.map((s) => path.normalize(path.join(path.dirname(file), s)));
}

describe('layers', () => {
  test('nothing in src/ imports coordinator/ or workers/', () => {
    const bad = sources('src').flatMap((f) =>
      imports(f)
        .filter(
          (i) =>
            i.startsWith(`coordinator${path.sep}`) ||
            i.startsWith(`workers${path.sep}`) ||
            !i.startsWith('src'),
        )
        .map((i) => `${f} -> ${i}`),
    );
    assert.deepEqual(bad, []);
  });

  test('telemetry does not import the CLI', () => {
    const bad = sources('src/telemetry').flatMap((f) =>
      imports(f)
        .filter((i) => i.startsWith(path.join('src', 'cli')))
        .map((i) => `${f} -> ${i}`),
    );
    assert.deepEqual(bad, []);
  });

  test('the process folders are entry points into the library', () => {
    for (const dir of ['coordinator', 'workers']) {
      const files = sources(dir);
      assert.deepEqual(files, [path.join(dir, 'main.ts')]);
      assert.ok(imports(files[0]!).includes(path.join('src', 'cli', 'main.js')), dir);
    }
  });
});
