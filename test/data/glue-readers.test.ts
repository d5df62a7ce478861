import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  DataFormatError,
  DEFAULT_FORMAT_OPTIONS,
  getTask,
  HoldoutTooLargeError,
  loadTask,
  MissingDataFileError,
  newReadReport,
  readOfficialSplit,
  UnknownTaskError,
} from '../../src/data/index.js';
import { jsonl, removeRoot, tempRoot, writeTaskDir } from './fixtures.js';

const root = tempRoot();
after(() => removeRoot(root));

const lines = (...rows: string[][]) => `${rows.map((r) => r.join('\t')).join('\n')}\n`;

describe('GLUE TSV readers (original layouts)', () => {
  it('CoLA: no header, 4 columns, label in column 2, sentence in column 4', () => {
    const dir = writeTaskDir(root, 'CoLA', {
      'train.tsv': lines([
        'gj04',
        '1',
        '',
        "Our friends won't buy this analysis, let alone the next one we propose.",
      ]),
      'dev.tsv': lines(
        ['gj04', '0', '*', 'They drank the pub.'],
        ['gj04', '1', '', 'The sailors rode the breeze clear of the rocks.'],
        ['bc01', '0', '*', 'Fred talked about.'],
        ['bc01', '1', '', 'John "likes" Mary.'],
      ),
    });
    const t = loadTask('cola', dir);
    assert.equal(t.train.length, 1);
    assert.deepEqual(
      { source: t.train[0]?.source, target: t.train[0]?.target },
      {
        source: "cola sentence: Our friends won't buy this analysis, let alone the next one we propose.",
        target: '1',
      },
    );
    // Small task: the 4 dev rows are halved into validation and test, disjointly.
    assert.equal(t.validation.length, 2);
    assert.equal(t.test.length, 2);
    const all = [...t.validation, ...t.test].map((e) => e.source).sort();
    assert.equal(new Set(all).size, 4);
    assert.ok(all.includes('cola sentence: John "likes" Mary.'), 'quotes are kept as text');
  });

  it('SST-2: header sentence/label; trailing spaces inside the sentence are kept', () => {
    const dir = writeTaskDir(root, 'SST-2', {
      'train.tsv': lines(['sentence', 'label'], ["it 's a charming and often affecting journey . ", '1']),
      'dev.tsv': lines(['sentence', 'label'], ['unflinchingly bleak and desperate ', '0']),
    });
    const rows = readOfficialSplit('sst2', dir, 'train');
    assert.equal(rows.rows.length, 1);
    assert.equal(rows.rows[0]?.ref, `${path.join(dir, 'train.tsv')}:2`);
    // SST-2 is a large task: its 1,000-row hold-out cannot come out of a 1-row file.
    assert.throws(
      () => loadTask('SST-2', dir),
      (e: unknown) => {
        assert.ok(e instanceof HoldoutTooLargeError);
        assert.match(
          e.message,
          /^task 'sst2': .*SST-2[/\\]train\.tsv has 1 training row\(s\), but the task's split holds out 1000/,
        );
        assert.match(e.message, /holdout of 1000 needs more than 1 training rows/);
        return true;
      },
    );
  });

  it("MRPC: BOM, CRLF, 'Quality #1 ID #2 ID #1 String #2 String' header, unbalanced quotes", () => {
    const header = ['\ufeffQuality', '#1 ID', '#2 ID', '#1 String', '#2 String'].join('\t');
    const row1 = [
      '1',
      '702876',
      '702977',
      'Amrozi accused his brother , whom he called " the witness " , of deliberately distorting his evidence .',
      'Referring to him as only " the witness " , Amrozi accused his brother of deliberately distorting his evidence .',
    ].join('\t');
    const row2 = [
      '0',
      '2108705',
      '2108831',
      "Yucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 billion .",
      "Yucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway for $ 1.8 billion in 1998 .",
    ].join('\t');
    const dir = writeTaskDir(root, 'MRPC', {
      'train.tsv': `${header}\r\n${row1}\r\n${row2}\r\n`,
      'dev.tsv': `${header}\r\n${row2}\r\n${row1}\r\n`,
    });
    const t = loadTask('mrpc', dir);
    assert.equal(t.train.length, 2);
    assert.equal(
      t.train[0]?.source,
      'mrpc sentence1: Amrozi accused his brother , whom he called " the witness " , of deliberately distorting his evidence . sentence2: Referring to him as only " the witness " , Amrozi accused his brother of deliberately distorting his evidence .',
    );
    assert.equal(t.train[0]?.target, '1');
    assert.equal(t.train[1]?.target, '0');
    assert.ok(!t.train[1]?.source.endsWith('\r'), 'CR stripped');
    assert.deepEqual(t.spec.metrics, ['f1', 'accuracy']);
  });

  it('STS-B: 10-column header; score rounded to the 0.2 grid, or to 1 decimal with the released quirk', () => {
    const header = [
      'index',
      'genre',
      'filename',
      'year',
      'old_index',
      'source1',
      'source2',
      'sentence1',
      'sentence2',
      'score',
    ];
    const row = (i: number, s: string) => [
      String(i),
      'main-captions',
      'MSRvid',
      '2012test',
      '0001',
      'none',
      'none',
      `A plane is taking off ${i}.`,
      'An air plane is taking off.',
      s,
    ];
    const dir = writeTaskDir(root, 'STS-B', {
      'train.tsv': lines(header, row(0, '5.000'), row(1, '3.750'), row(2, '0.500'), row(3, '2.25')),
      'dev.tsv': lines(header, row(0, '4.000'), row(1, '1.333')),
    });
    const grid = loadTask('stsb', dir);
    // 3.75*5 = 18.75 -> 19 -> 3.8; 0.5*5 = 2.5 -> 3 -> 0.6; 2.25*5 = 11.25 -> 11 -> 2.2
    assert.deepEqual(
      grid.train.map((e) => e.target),
      ['5.0', '3.8', '0.6', '2.2'],
    );
    const released = loadTask('stsb', dir, { format: { stsbRounding: 'released' } });
    // np.round(x, 1): 3.75 -> 3.8 (half to even on 37.5), 0.5 -> 0.5, 2.25 -> 2.2 (22.5 -> 22)
    assert.deepEqual(
      released.train.map((e) => e.target),
      ['5.0', '3.8', '0.5', '2.2'],
    );
    assert.equal(
      grid.train[0]?.source,
      'stsb sentence1: A plane is taking off 0. sentence2: An air plane is taking off.',
    );
  });

  it('QQP: large-task rule holds 1,000 training rows out as validation; official dev = test', () => {
    const header = ['id', 'qid1', 'qid2', 'question1', 'question2', 'is_duplicate'];
    const rows = Array.from({ length: 1005 }, (_, i) => [
      String(i),
      String(2 * i),
      String(2 * i + 1),
      `How do I learn ${i}?`,
      `What is the way to learn ${i}?`,
      String(i % 2),
    ]);
    const dir = writeTaskDir(root, 'QQP', {
      'train.tsv': lines(header, ...rows),
      'dev.tsv': lines(header, ['1', '2', '3', 'Why is the sky blue?', 'What makes the sky blue?', '1']),
    });
    const t = loadTask('qqp', dir);
    assert.equal(t.train.length, 5);
    assert.equal(t.validation.length, 1000);
    assert.equal(t.test.length, 1);
    assert.equal(
      t.test[0]?.source,
      'qqp question1: Why is the sky blue? question2: What makes the sky blue?',
    );
    const trainSet = new Set(t.train.map((e) => e.source));
    assert.ok(
      t.validation.every((e) => !trainSet.has(e.source)),
      'held-out rows are not in train',
    );
    // Deterministic with the default seed 42; another seed holds out other rows.
    assert.deepEqual(
      loadTask('qqp', dir).train.map((e) => e.ref),
      t.train.map((e) => e.ref),
    );
    assert.notDeepEqual(
      loadTask('qqp', dir, { splitSeed: 7 }).train.map((e) => e.ref),
      t.train.map((e) => e.ref),
    );
  });

  it('MNLI: columns found by header, gold_label; validation = mismatched, test = matched', () => {
    const trainHeader = [
      'index',
      'promptID',
      'pairID',
      'genre',
      'sentence1_binary_parse',
      'sentence2_binary_parse',
      'sentence1_parse',
      'sentence2_parse',
      'sentence1',
      'sentence2',
      'label1',
      'gold_label',
    ];
    const devHeader = [
      ...trainHeader.slice(0, 10),
      'label1',
      'label2',
      'label3',
      'label4',
      'label5',
      'gold_label',
    ];
    const tr = (p: string, h: string, l: string) => [
      '0',
      '31193',
      '31193n',
      'government',
      '( ( x ) )',
      '( y )',
      '(ROOT (S))',
      '(ROOT (S))',
      p,
      h,
      l,
      l,
    ];
    const dv = (p: string, h: string, l: string) => [
      '0',
      '63735',
      '63735n',
      'slate',
      '( x )',
      '( y )',
      '(ROOT)',
      '(ROOT)',
      p,
      h,
      l,
      l,
      l,
      l,
      l,
      l,
    ];
    const dir = writeTaskDir(root, 'MNLI', {
      'train.tsv': lines(
        trainHeader,
        tr(
          'Conceptually cream skimming has two basic dimensions - product and geography.',
          'Product and geography are what make cream skimming work. ',
          'neutral',
        ),
      ),
      'dev_matched.tsv': lines(
        devHeader,
        dv('The new rights are nice enough', 'Everyone really likes the newest benefits ', 'neutral'),
        dv(
          'This site includes a list of all award winners.',
          'The Government Executive articles housed on the website are not able to be searched.',
          'contradiction',
        ),
      ),
      'dev_mismatched.tsv': lines(
        devHeader,
        dv(
          'Your contribution helped make it possible for us to provide our students with a quality education.',
          "Your contributions were of no help with our students' education.",
          'contradiction',
        ),
      ),
    });
    const t = loadTask('mnli', dir);
    assert.equal(
      t.train[0]?.source,
      'mnli premise: Conceptually cream skimming has two basic dimensions - product and geography. hypothesis: Product and geography are what make cream skimming work. ',
    );
    assert.equal(t.train[0]?.target, '1');
    assert.equal(t.validation.length, 1);
    assert.equal(t.validation[0]?.target, '2');
    assert.equal(t.test.length, 2);
    assert.ok(t.files.validation_mismatched?.endsWith('dev_mismatched.tsv'));
    assert.deepEqual(t.spec.labels, ['0', '1', '2']);
  });

  it('QNLI, RTE, WNLI: index/.../label layouts with string or 0/1 labels', () => {
    const q = writeTaskDir(root, 'QNLI', {
      'train.tsv': lines(
        ['index', 'question', 'sentence', 'label'],
        [
          '0',
          'When did the third Digimon series begin?',
          'Unlike the two seasons before it, Digimon Tamers takes a darker turn.',
          'not_entailment',
        ],
      ),
      'dev.tsv': lines(
        ['index', 'question', 'sentence', 'label'],
        [
          '0',
          'What came into force after the new constitution was herald?',
          'As of that day, the new constitution heralding the Second Republic came into force.',
          'entailment',
        ],
      ),
    });
    const qs = readOfficialSplit('qnli', q, 'train');
    assert.equal(qs.rows.length, 1);
    const w = writeTaskDir(root, 'WNLI', {
      'train.tsv': lines(
        ['index', 'sentence1', 'sentence2', 'label'],
        [
          '0',
          'I stuck a pin through a carrot. When I pulled the pin out, it had a hole.',
          'The carrot had a hole.',
          '1',
        ],
      ),
      'dev.tsv': lines(
        ['index', 'sentence1', 'sentence2', 'label'],
        ['0', 'The drain is clogged with hair. It has to be cleaned.', 'The hair has to be cleaned.', '0'],
        ['1', 'Jane knocked on the door.', 'Susan opened.', '1'],
      ),
    });
    const wt = loadTask('wnli', w);
    assert.equal(
      wt.train[0]?.source,
      'wnli sentence1: I stuck a pin through a carrot. When I pulled the pin out, it had a hole. sentence2: The carrot had a hole.',
    );
    assert.equal(wt.train[0]?.target, '1');
  });
});

describe('malformed records and missing files', () => {
  const header = ['index', 'sentence1', 'sentence2', 'label'];
  const good = (i: number) => [String(i), `Premise ${i} "quoted`, `Hypothesis ${i}`, 'entailment'];

  it('a line with the wrong column count names file:line, expected and found', () => {
    const dir = writeTaskDir(root, 'RTE-bad', {
      'train.tsv': lines(header, good(0), ['1', 'only two columns']),
      'dev.tsv': lines(header, good(0), good(1)),
    });
    assert.throws(
      () => loadTask('rte', dir),
      (e: unknown) => {
        assert.ok(e instanceof DataFormatError);
        assert.equal(e.file, path.join(dir, 'train.tsv'));
        assert.equal(e.line, 3);
        assert.match(
          e.message,
          /train\.tsv:3: expected 4 tab-separated columns, found 2 columns "1\\tonly two columns"/,
        );
        return true;
      },
    );
  });

  it('an unknown label is malformed at its line; skip mode counts and reports', () => {
    const dir = writeTaskDir(root, 'RTE-skip', {
      'train.tsv': lines(header, good(0), [...good(1).slice(0, 3), 'maybe'], good(2), ['9', 'x']),
      'dev.tsv': `${lines(header, good(0), good(1))}\n\n`,
    });
    assert.throws(
      () => loadTask('rte', dir),
      /train\.tsv:3: expected field 'label' to be a label: 0 \(entailment\) \| 1 \(not_entailment\), found "maybe"/,
    );
    const report = newReadReport();
    const t = loadTask('rte', dir, { onMalformed: 'skip', report });
    assert.equal(t.train.length, 2);
    assert.equal(report.skipped, 2);
    assert.equal(report.skippedByFile[path.join(dir, 'train.tsv')], 2);
    assert.deepEqual(report.examples.map((e) => e.line).sort(), [3, 5]);
    assert.equal(t.report, report);
  });

  it('a wrong header is never skippable: the file has another layout', () => {
    const dir = writeTaskDir(root, 'RTE-header', {
      'train.tsv': lines(['id', 'premise', 'hypothesis', 'label'], good(0)),
      'dev.tsv': lines(header, good(0)),
    });
    assert.throws(
      () => loadTask('rte', dir, { onMalformed: 'skip' }),
      /train\.tsv:1: expected a header with columns sentence1, sentence2, label/,
    );
  });

  it('missing file lists the accepted names; unknown task lists the known tasks', () => {
    const dir = writeTaskDir(root, 'empty', {});
    assert.throws(
      () => loadTask('mnli', dir),
      (e: unknown) => {
        assert.ok(e instanceof MissingDataFileError);
        assert.deepEqual(e.expectedFiles, ['train.tsv', 'train.jsonl', 'train.json']);
        assert.match(
          e.message,
          /no train file for task 'mnli' in .*: expected one of train\.tsv, train\.jsonl, train\.json/,
        );
        return true;
      },
    );
    fs.writeFileSync(path.join(dir, 'train.tsv'), '');
    assert.throws(
      () => loadTask('mnli', dir),
      (e: unknown) => e instanceof DataFormatError && /empty file/.test(e.message),
    );
    assert.throws(
      () => loadTask('glue-nope', dir),
      (e: unknown) => {
        assert.ok(e instanceof UnknownTaskError);
        for (const k of ['cola', 'mnli', 'superglue-multirc', 'squad', 'demo-nli'])
          assert.ok(e.knownTasks.includes(k), k);
        assert.match(e.message, /unknown task 'glue-nope'\. Known tasks: .*mnli/);
        return true;
      },
    );
  });

  it('invalid JSONL line: file:line with the offending text', () => {
    const dir = writeTaskDir(root, 'rte-jsonl-bad', {
      'train.jsonl': `${JSON.stringify({ sentence1: 'a', sentence2: 'b', label: 0, idx: 0 })}\n{"sentence1": "a", \n`,
      'validation.jsonl': jsonl([{ sentence1: 'a', sentence2: 'b', label: 1, idx: 0 }]),
    });
    assert.throws(
      () => loadTask('rte', dir),
      /train\.jsonl:2: expected one JSON object per line, found invalid JSON "\{\\"sentence1\\": \\"a\\", "/,
    );
    const report = newReadReport();
    assert.equal(loadTask('rte', dir, { onMalformed: 'skip', report }).train.length, 1);
    assert.equal(report.skipped, 1);
  });
});

describe('Hugging Face JSONL exports of GLUE', () => {
  it('mnli validation_matched/mismatched and integer labels; sst2 as .json (HF default name)', () => {
    const dir = writeTaskDir(root, 'hf-mnli', {
      'train.jsonl': jsonl([{ premise: 'P é', hypothesis: 'H ü', label: 2, idx: 0 }]),
      'validation_matched.jsonl': jsonl([{ premise: 'Pm', hypothesis: 'Hm', label: 0, idx: 0 }]),
      'validation_mismatched.jsonl': jsonl([{ premise: 'Pmm', hypothesis: 'Hmm', label: 1, idx: 0 }]),
    });
    const t = loadTask('mnli', dir);
    assert.equal(t.train[0]?.source, 'mnli premise: P é hypothesis: H ü');
    assert.equal(t.train[0]?.target, '2');
    assert.equal(t.validation[0]?.source, 'mnli premise: Pmm hypothesis: Hmm');
    assert.equal(t.test[0]?.target, '0');
    const s = writeTaskDir(root, 'hf-sst2', {
      'train.json': jsonl([{ sentence: 'good', label: 1, idx: 0 }]),
    });
    assert.equal(readOfficialSplit('sst2', s, 'train').rows.length, 1);
    const bad = writeTaskDir(root, 'hf-mnli-bad', {
      'train.jsonl': jsonl([{ premise: 'P', hypothesis: 'H', label: -1, idx: 0 }]),
    });
    assert.throws(
      () => readOfficialSplit('mnli', bad, 'train'),
      /train\.jsonl:1: expected field 'label' to be a label: 0 \(entailment\) \| 1 \(neutral\) \| 2 \(contradiction\), found -1/,
    );
  });

  it('stsb float labels and cola/qqp/qnli/rte/wnli/mrpc field names', () => {
    const cases: [string, Record<string, unknown>, string, string][] = [
      [
        'stsb',
        { sentence1: 'a', sentence2: 'b', label: 3.2, idx: 0 },
        'stsb sentence1: a sentence2: b',
        '3.2',
      ],
      ['cola', { sentence: 'a', label: 1, idx: 0 }, 'cola sentence: a', '1'],
      ['qqp', { question1: 'a', question2: 'b', label: 0, idx: 0 }, 'qqp question1: a question2: b', '0'],
      ['qnli', { question: 'a', sentence: 'b', label: 1, idx: 0 }, 'qnli question: a sentence: b', '1'],
      ['rte', { sentence1: 'a', sentence2: 'b', label: 0, idx: 0 }, 'rte sentence1: a sentence2: b', '0'],
      ['wnli', { sentence1: 'a', sentence2: 'b', label: 1, idx: 0 }, 'wnli sentence1: a sentence2: b', '1'],
      ['mrpc', { sentence1: 'a', sentence2: 'b', label: 1, idx: 0 }, 'mrpc sentence1: a sentence2: b', '1'],
    ];
    for (const [task, row, source, target] of cases) {
      const dir = writeTaskDir(root, `hf-${task}`, { 'train.jsonl': jsonl([row]) });
      assert.equal(readOfficialSplit(task, dir, 'train').rows.length, 1, task);
      const ex = loadTaskFormat(task, dir);
      assert.deepEqual(ex, { source, target }, task);
    }
  });
});

/** Formats the first training row of a task folder through the task's own formatter. */
function loadTaskFormat(task: string, dir: string): { source: string; target: string } {
  const row = readOfficialSplit(task, dir, 'train').rows[0];
  assert.ok(row);
  const e = getTask(task).format(row.row, DEFAULT_FORMAT_OPTIONS)[0];
  assert.ok(e);
  return { source: e.source, target: e.target };
}

describe('real GLUE RTE files (../shared/data/glue/RTE)', () => {
  const dir = path.resolve(process.cwd(), '..', 'shared', 'data', 'glue', 'RTE');
  const present = fs.existsSync(path.join(dir, 'train.tsv')) && fs.existsSync(path.join(dir, 'dev.tsv'));
  it('reads 1,244 train and 139 dev rows, both labels, and formats as ATTEMPT', {
    skip: present ? false : `RTE files absent at ${dir}`,
  }, () => {
    const train = readOfficialSplit('rte', dir, 'train');
    const dev = readOfficialSplit('rte', dir, 'validation');
    assert.equal(train.rows.length, 1244);
    assert.equal(dev.rows.length, 139);
    const t = loadTask('rte', dir);
    assert.equal(t.train.length, 1244);
    assert.equal(t.validation.length, 69);
    assert.equal(t.test.length, 70);
    assert.deepEqual([...new Set(t.train.map((e) => e.target))].sort(), ['0', '1']);
    assert.equal(
      t.train[0]?.source,
      'rte sentence1: A place of sorrow, after Pope John Paul II died, became a place of celebration, as Roman Catholic faithful gathered in downtown Chicago to mark the installation of new Pope Benedict XVI. sentence2: Pope Benedict XVI is the new leader of the Roman Catholic Church.',
    );
    assert.equal(t.train[0]?.target, '0');
    assert.equal(t.train[0]?.ref, `${path.join(dir, 'train.tsv')}:2`);
    // Real quirks: some sentences hold double quotes and non-ASCII text, read verbatim.
    assert.ok(t.train.some((e) => e.source.includes('"')));
    assert.ok(t.train.some((e) => [...e.source].some((ch) => (ch.codePointAt(0) ?? 0) > 127)));
    // Splitting is deterministic and validation/test partition the dev rows.
    const again = loadTask('rte', dir);
    assert.deepEqual(
      again.validation.map((e) => e.ref),
      t.validation.map((e) => e.ref),
    );
    assert.equal(new Set([...t.validation, ...t.test].map((e) => e.ref)).size, 139);
  });
});
