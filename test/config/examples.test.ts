/**
 * The shipped example configs (examples/*.json) parse and validate; attempt-glue.json finds its tasks in the GLUE
 * download layout (RTE/, SST-2/, ...) and reads RTE from it; a missing task folder is reported at start-up for
 * every stage at once (checkJobTasks), naming the stage.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { demoJob } from '../../src/config/demo-job.js';
import { type JobConfig, JobConfigError, readJobConfig } from '../../src/config/job-config.js';
import { checkJobTasks, loadStageTasks } from '../../src/train/task-source.js';
import { removeRoot, tempRoot, writeTaskDir } from '../data/fixtures.js';

/** The repository root (this file runs from dist/test/config). */
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const EXAMPLES = path.join(ROOT, 'examples');

const tsv = (rows: string[][]) => `${rows.map((r) => r.join('\t')).join('\n')}\n`;

/** A GLUE download in miniature: the folders and files the tasks of attempt-glue.json read. */
function glueRoot(root: string, skip: string[] = []): void {
  const pair = (a: string, b: string, labels: string[]) => ({
    'train.tsv': tsv([
      ['index', a, b, 'label'],
      ...labels.map((l, i) => [String(i), `first ${i}`, `second ${i}`, l]),
    ]),
    'dev.tsv': tsv([
      ['index', a, b, 'label'],
      ...labels.map((l, i) => [String(i), `dev ${i}`, `other ${i}`, l]),
    ]),
  });
  const folders: Record<string, Record<string, string>> = {
    RTE: pair('sentence1', 'sentence2', ['entailment', 'not_entailment', 'entailment', 'not_entailment']),
    QNLI: pair('question', 'sentence', ['entailment', 'not_entailment']),
    'SST-2': {
      'train.tsv': tsv([
        ['sentence', 'label'],
        ['a fine film', '1'],
        ['a dull film', '0'],
      ]),
      'dev.tsv': tsv([
        ['sentence', 'label'],
        ['lovely', '1'],
        ['awful', '0'],
      ]),
    },
  };
  for (const [name, files] of Object.entries(folders))
    if (!skip.includes(name)) writeTaskDir(root, name, files);
  // MNLI and QQP only need their folders for the start-up check (their readers are tested in test/data).
  for (const name of ['MNLI', 'QQP']) if (!skip.includes(name)) fs.mkdirSync(path.join(root, name));
}

describe('example job configs', () => {
  const roots: string[] = [];
  after(() => {
    for (const r of roots) removeRoot(r);
  });

  test('every examples/*.json parses and validates', () => {
    const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.json'));
    assert.ok(files.includes('attempt-glue.json'), `examples/ holds ${files.join(', ')}`);
    for (const f of files) {
      const job = readJobConfig(path.join(EXAMPLES, f));
      assert.ok(job.stages.length > 0, f);
      // The backbone the example names exists in the checkout.
      assert.ok(
        fs.existsSync(path.join(job.backbone.checkpoint, 'config.json')),
        `${f}: ${job.backbone.checkpoint}`,
      );
    }
  });

  test('attempt-glue.json: ATTEMPT over four GLUE source prompts for RTE, read from the GLUE layout', () => {
    const job = readJobConfig(path.join(EXAMPLES, 'attempt-glue.json'));
    assert.deepEqual(
      job.stages.map((s) => [s.name, s.method.name, s.tasks]),
      [
        ['sources', 'prompt-tuning', ['mnli', 'sst2', 'qnli', 'qqp']],
        ['targets', 'attempt', ['rte']],
      ],
    );
    const root = tempRoot();
    roots.push(root);
    glueRoot(root);
    const data: JobConfig['data'] = { root, onMalformed: 'error' };
    checkJobTasks({ ...job, data });
    const rte = loadStageTasks(data, job.stages[1]!).train[0]!;
    assert.equal(rte.name, 'rte');
    assert.ok(rte.train.length > 0 && rte.validation.length > 0);
    assert.match(rte.train[0]!.source, /^rte sentence1: /);
  });

  test('a missing task folder is reported at start-up, for every stage at once, naming each stage', () => {
    const job = readJobConfig(path.join(EXAMPLES, 'attempt-glue.json'));
    const root = tempRoot();
    roots.push(root);
    glueRoot(root, ['QQP', 'RTE']);
    assert.throws(
      () => checkJobTasks({ ...job, data: { root, onMalformed: 'error' } }, 'attempt-glue.json'),
      (e: unknown) => {
        assert.ok(e instanceof JobConfigError);
        assert.match(e.message, /^attempt-glue\.json: stages\[0\]\.tasks: /);
        assert.match(e.message, /stage 'sources': no folder for task 'qqp' under .*QQP/);
        assert.match(e.message, /stage 'targets': no folder for task 'rte' under .*RTE/);
        assert.doesNotMatch(e.message, /'mnli'|'sst2'|'qnli'/);
        return true;
      },
    );
  });

  test('demo-curves.json is the built-in demo job, evaluated every 50 steps', () => {
    const job = readJobConfig(path.join(EXAMPLES, 'demo-curves.json'));
    const demo = demoJob();
    assert.equal(job.backbone.checkpoint, demo.backbone.checkpoint);
    const evalEvery = (j: JobConfig) => j.stages.map((s) => s.train.evalEvery);
    assert.deepEqual(evalEvery(job), [50, 50]);
    const without = (j: JobConfig) => ({
      ...j,
      jobId: '',
      stages: j.stages.map((s) => ({ ...s, train: { ...s.train, evalEvery: 0 } })),
    });
    assert.deepEqual(without(job), without(demo));
  });

  test('the demo suite: a task it does not have is named', () => {
    const job = readJobConfig(path.join(EXAMPLES, 'attempt-glue.json'));
    assert.throws(
      () => checkJobTasks({ ...job, data: { suite: 'demo' } }),
      /stage 'sources': the demo suite has no task 'mnli' \(it has demo-/,
    );
  });
});
