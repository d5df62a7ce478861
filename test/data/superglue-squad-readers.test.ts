import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  DataFormatError,
  DEFAULT_FORMAT_OPTIONS,
  getTask,
  loadTask,
  newReadReport,
  readOfficialSplit,
} from '../../src/data/index.js';
import { jsonl, removeRoot, tempRoot, writeTaskDir } from './fixtures.js';

const root = tempRoot();
after(() => removeRoot(root));

describe('SuperGLUE JSONL (original files and Hugging Face exports)', () => {
  it('BoolQ original: boolean label, val.jsonl', () => {
    const dir = writeTaskDir(root, 'BoolQ', {
      'train.jsonl': jsonl([
        {
          question: 'do iran and afghanistan speak the same language',
          passage: 'Persian language -- Persian is ...',
          idx: 0,
          label: true,
        },
      ]),
      'val.jsonl': jsonl([
        { question: 'q1', passage: 'p1', idx: 0, label: false },
        { question: 'q2', passage: 'p2', idx: 1, label: true },
      ]),
    });
    const t = loadTask('boolq', dir);
    assert.equal(
      t.train[0]?.source,
      'superglue-boolq question: do iran and afghanistan speak the same language passage: Persian language -- Persian is ...',
    );
    assert.equal(t.train[0]?.target, '1');
    assert.equal(t.validation.length + t.test.length, 2);
  });

  it('CB: string labels map to HF indices (entailment 0, contradiction 1, neutral 2); HF ints too', () => {
    const dir = writeTaskDir(root, 'CB', {
      'train.jsonl': jsonl([
        {
          premise: 'It was a complex language.',
          hypothesis: 'the language was peeled down',
          label: 'contradiction',
          idx: 0,
        },
        { premise: 'p', hypothesis: 'h', label: 'neutral', idx: 1 },
        { premise: 'p', hypothesis: 'h', label: 0, idx: 2 },
      ]),
      'val.jsonl': jsonl([{ premise: 'p', hypothesis: 'h', label: 'entailment', idx: 0 }]),
    });
    const t = loadTask('superglue-cb', dir);
    assert.deepEqual(
      t.train.map((e) => e.target),
      ['1', '2', '0'],
    );
    assert.equal(
      t.train[0]?.source,
      'superglue-cb premise: It was a complex language. hypothesis: the language was peeled down',
    );
    assert.deepEqual(t.spec.metrics, ['macro_f1', 'accuracy']);
  });

  it('COPA, WiC, RTE formats', () => {
    const copa = writeTaskDir(root, 'COPA', {
      'train.jsonl': jsonl([
        {
          premise: 'My body cast a shadow over the grass.',
          choice1: 'The sun was rising.',
          choice2: 'The grass was cut.',
          question: 'cause',
          label: 0,
          idx: 0,
        },
      ]),
    });
    const row = readOfficialSplit('copa', copa, 'train').rows[0];
    assert.ok(row);
    const wic = writeTaskDir(root, 'WiC', {
      'train.jsonl': jsonl([
        {
          word: 'place',
          sentence1: 'Do you want to come over to my place later?',
          sentence2: 'A political system with no place for the less prominent groups.',
          idx: 0,
          label: false,
          start1: 31,
          start2: 27,
          end1: 36,
          end2: 32,
          version: 1.1,
        },
      ]),
      'val.jsonl': jsonl([{ word: 'w', sentence1: 'a', sentence2: 'b', idx: 0, label: true }]),
    });
    const w = loadTask('wic', wic);
    assert.equal(
      w.train[0]?.source,
      'superglue-wic sentence1: Do you want to come over to my place later? sentence2: A political system with no place for the less prominent groups. word: place',
    );
    assert.equal(w.train[0]?.target, '0');
    const rte = writeTaskDir(root, 'SG-RTE', {
      'train.jsonl': jsonl([
        {
          premise: 'No Weapons of Mass Destruction Found in Iraq Yet.',
          hypothesis: 'Weapons of Mass Destruction Found in Iraq.',
          label: 'not_entailment',
          idx: 0,
        },
      ]),
      'validation.jsonl': jsonl([{ premise: 'p', hypothesis: 'h', label: 0, idx: 0 }]),
    });
    const r = loadTask('superglue-rte', rte);
    assert.equal(
      r.train[0]?.source,
      'superglue-rte premise: No Weapons of Mass Destruction Found in Iraq Yet. hypothesis: Weapons of Mass Destruction Found in Iraq.',
    );
    assert.equal(r.train[0]?.target, '1');
  });

  it('WSC original layout (spans under target) marks span1 with * and span2 with #, as T5', () => {
    const text =
      'Mark told Pete many lies about himself, which Pete included in his book. He should have been more truthful.';
    const dir = writeTaskDir(root, 'WSC', {
      'train.jsonl': jsonl([
        {
          text,
          target: { span2_index: 13, span1_index: 0, span1_text: 'Mark', span2_text: 'He' },
          idx: 0,
          label: false,
        },
      ]),
      'validation.jsonl': jsonl([
        { text, span1_index: 0, span2_index: 13, span1_text: 'Mark', span2_text: 'He', idx: 0, label: 1 },
      ]),
    });
    const t = loadTask('wsc.fixed', dir);
    const expected =
      'superglue-wsc.fixed text: * Mark * told Pete many lies about himself, which Pete included in his book. # He # should have been more truthful.';
    assert.equal(t.train[0]?.source, expected);
    assert.equal(t.train[0]?.target, '0');
    // The HF flat layout gives the same source.
    assert.equal([...t.validation, ...t.test][0]?.source, expected);
  });

  it('MultiRC original nested layout flattens per answer and keeps question ids as groups', () => {
    const original = {
      idx: 0,
      version: 1.1,
      passage: {
        text: 'Sent 1: The <b>bear</b> slept.<br>Sent 2: Then it woke up.',
        questions: [
          {
            question: 'What did the bear do?',
            idx: 0,
            answers: [
              { text: 'Slept', idx: 0, label: 1 },
              { text: 'Ran', idx: 1, label: 0 },
            ],
          },
          { question: 'When did it wake?', idx: 1, answers: [{ text: 'Then', idx: 2, label: 1 }] },
        ],
      },
    };
    const dir = writeTaskDir(root, 'MultiRC', {
      'train.jsonl': jsonl([original]),
      'val.jsonl': jsonl([original, { ...original, idx: 1 }]),
    });
    const t = loadTask('multirc', dir);
    assert.equal(t.train.length, 3);
    assert.equal(
      t.train[0]?.source,
      'superglue-multirc question: What did the bear do? answer: Slept paragraph: Sent 1: The bear slept. Sent 2: Then it woke up.',
    );
    assert.deepEqual(
      t.train.map((e) => [e.group, e.target]),
      [
        ['0:0', '1'],
        ['0:0', '0'],
        ['0:1', '1'],
      ],
    );
    // Halving keeps every question's answers together: each group lies wholly in validation or test.
    const groupsVal = new Set(t.validation.map((e) => e.group));
    assert.ok(t.test.every((e) => !groupsVal.has(e.group)));
    assert.equal(t.validation.length + t.test.length, 6);
    // HF flat rows use idx.paragraph/idx.question as the group.
    const hf = writeTaskDir(root, 'hf-multirc', {
      'train.jsonl': jsonl([
        {
          paragraph: 'P',
          question: 'Q',
          answer: 'A',
          idx: { paragraph: 3, question: 7, answer: 0 },
          label: 1,
        },
      ]),
    });
    const r = readOfficialSplit<{ group: string }>('multirc', hf, 'train').rows[0];
    assert.equal(r?.row.group, '3:7');
  });

  it('ReCoRD original layout: entities from inclusive spans, @highlight handling, one example per answer in train', () => {
    const text = 'The cat sat.\n@highlight\nCat sits\n@highlight\nDog runs';
    const rec = {
      source: 'Daily mail',
      idx: 0,
      passage: {
        text,
        entities: [
          { start: 4, end: 6 },
          { start: 44, end: 46 },
        ],
      },
      qas: [
        {
          query: 'The @placeholder sat down',
          idx: 0,
          answers: [
            { start: 4, end: 6, text: 'cat' },
            { start: 4, end: 6, text: 'Cat' },
          ],
        },
      ],
    };
    assert.equal(text.slice(44, 47), 'Dog');
    const dir = writeTaskDir(root, 'ReCoRD', { 'train.jsonl': jsonl([rec]) });
    const rows = readOfficialSplit<{ entities: string[]; answers: string[] }>('record', dir, 'train').rows;
    assert.deepEqual(rows[0]?.row.entities, ['Dog', 'cat']);
    assert.deepEqual(rows[0]?.row.answers, ['cat', 'Cat']);
    const spec = getTask('record');
    const train = spec.format(rows[0]?.row, { ...DEFAULT_FORMAT_OPTIONS, duplicatePerAnswer: true });
    assert.deepEqual(
      train.map((e) => e.target),
      ['cat', 'Cat'],
    );
    assert.equal(
      train[0]?.source,
      'superglue-record query: The @placeholder sat down entities: Dog, cat passage: The cat sat. Cat sits. Dog runs',
    );
    const evaluation = spec.format(rows[0]?.row, DEFAULT_FORMAT_OPTIONS);
    assert.equal(evaluation.length, 1);
    assert.deepEqual(evaluation[0]?.answers, ['cat', 'Cat']);
  });
});

describe('SQuAD v1.1', () => {
  const doc = {
    version: '1.1',
    data: [
      {
        title: 'Normans',
        paragraphs: [
          {
            context: 'The Normans were in Normandy, a region in France.',
            qas: [
              {
                id: 'a1',
                question: 'In what country is Normandy located?',
                answers: [
                  { text: 'France', answer_start: 42 },
                  { text: 'France.', answer_start: 42 },
                ],
              },
            ],
          },
        ],
      },
    ],
  };

  it('official JSON: punctuation padded as T5, all answers kept for EM/F1', () => {
    const dir = writeTaskDir(root, 'squad', { 'train-v1.1.json': JSON.stringify(doc) });
    const s = readOfficialSplit('squad', dir, 'train');
    assert.equal(s.rows.length, 1);
    assert.equal(s.rows[0]?.ref, `${path.join(dir, 'train-v1.1.json')}#data[0].paragraphs[0].qas[0]`);
  });

  it('HF JSONL export; structural errors name file, line and JSON path', () => {
    const dir = writeTaskDir(root, 'hf-squad', {
      'train.jsonl': jsonl(
        Array.from({ length: 1002 }, (_, i) => ({
          id: `${i}`,
          title: 't',
          context: `Paris is in France ${i}.`,
          question: 'Where is Paris?',
          answers: { text: ['France'], answer_start: [12] },
        })),
      ),
      'validation.jsonl': jsonl([
        {
          id: 'v',
          title: 't',
          context: "It's (really) big.",
          question: 'How big?',
          answers: { text: ['really big', '(really) big'], answer_start: [5, 5] },
        },
      ]),
    });
    const t = loadTask('squad', dir);
    assert.equal(t.train.length, 2);
    assert.equal(t.validation.length, 1000);
    assert.equal(t.test[0]?.source, "squad question: How big ? context: It ' s ( really ) big .");
    assert.equal(t.test[0]?.target, 'really big');
    assert.deepEqual(t.test[0]?.answers, ['really big', '( really ) big']);

    const bad = {
      ...doc,
      data: [{ title: 'x', paragraphs: [{ context: 'c', qas: [{ id: 'q', question: 7, answers: [] }] }] }],
    };
    const badDir = writeTaskDir(root, 'squad-bad', {
      'train-v1.1.json': JSON.stringify(bad),
      'dev-v1.1.json': '{\n  "data": [\n    {"title": "x",,}\n  ]\n}\n',
    });
    assert.throws(
      () => readOfficialSplit('squad', badDir, 'train'),
      (e: unknown) =>
        e instanceof DataFormatError &&
        /train-v1\.1\.json:1: expected at data\[0\]\.paragraphs\[0\]\.qas\[0\]: field 'question' to be a string, found 7/.test(
          e.message,
        ),
    );
    const report = newReadReport();
    assert.equal(readOfficialSplit('squad', badDir, 'train', { onMalformed: 'skip', report }).rows.length, 0);
    assert.equal(report.skipped, 1);
    assert.throws(
      () => readOfficialSplit('squad', badDir, 'validation'),
      /dev-v1\.1\.json:3: expected a valid JSON document/,
    );
    assert.ok(fs.existsSync(path.join(badDir, 'dev-v1.1.json')));
  });
});
