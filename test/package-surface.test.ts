/**
 * The package surface (issue 13 item 5): a TypeScript program in another folder, with promptmesh installed as a
 * dependency (a node_modules link to this checkout's built package), type-checks against `exports`' types and runs
 * against its JavaScript: it trains nothing, but creates a bank, commits and reads a version, and lists methods.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc');

test('a TypeScript user imports promptmesh by name: types check, the program runs', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-consumer-'));
  try {
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(repoRoot, path.join(dir, 'node_modules', 'promptmesh'), 'dir');
    // @types/node comes from the checkout, as a user's own devDependency would.
    fs.mkdirSync(path.join(dir, 'node_modules', '@types'));
    fs.symlinkSync(
      path.join(repoRoot, 'node_modules', '@types', 'node'),
      path.join(dir, 'node_modules', '@types', 'node'),
      'dir',
    );
    fs.writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ type: 'module', dependencies: { promptmesh: '*' } }),
    );
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: true,
          types: ['node'],
          outDir: 'out',
        },
        include: ['main.ts'],
      }),
    );
    fs.writeFileSync(
      path.join(dir, 'main.ts'),
      `import { bank, DirectoryStore, type Manifest, methodNames, PromptBank, type TensorMap } from 'promptmesh';
const b = new PromptBank(new DirectoryStore(process.argv[2]!));
const tensors: TensorMap = new Map([['prompt.x', { shape: [2, 4], data: new Float32Array(8).fill(0.5) }]]);
const m: Manifest = await b.commit({ job: 'lib', parent: null, step: 1, method: 'prompt-tuning', tensors });
const back = await b.load(m.id);
console.log(JSON.stringify({ methods: methodNames(), id: m.id, sum: [...back.get('prompt.x')!.data].reduce((a, v) => a + v, 0), job: bank.checkJobName('lib') }));
`,
    );
    const typed = spawnSync(tsc, ['-p', dir], { encoding: 'utf8' });
    assert.equal(typed.status, 0, `tsc: ${typed.stdout}${typed.stderr}`);
    const run = spawnSync(process.execPath, [path.join(dir, 'out', 'main.js'), path.join(dir, 'bank')], {
      encoding: 'utf8',
      cwd: dir,
    });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout.trim().split('\n').pop()!) as {
      methods: string[];
      id: string;
      sum: number;
      job: string;
    };
    assert.deepEqual([...out.methods].sort(), ['attempt', 'prompt-tuning', 'spt', 'tpt']);
    assert.match(out.id, /^[0-9a-f]{64}$/);
    assert.equal(out.sum, 4);
    assert.equal(out.job, 'lib');
    // A type error in the user's program is caught against our declarations, not silently `any`.
    fs.writeFileSync(
      path.join(dir, 'main.ts'),
      `import { PromptBank } from 'promptmesh';\nconst n: number = PromptBank;\n`,
    );
    const bad = spawnSync(tsc, ['-p', dir], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stdout, /TS2322/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
