/**
 * SuperGLUE tasks. Each accepts both the original SuperGLUE JSONL (val.jsonl; string/boolean labels, nested
 * MultiRC/ReCoRD passages, WSC spans under `target`) and Hugging Face `super_glue/<config>` exports
 * (validation.jsonl; integer labels, flattened rows); the shape of each record decides which. Names and source
 * formats follow ATTEMPT (`superglue-<config>`, `str(label)` targets).
 */
import { RecordShapeError } from '../errors.js';
import {
  arr,
  describeValue,
  field,
  int,
  label,
  obj,
  type RawRecord,
  str,
  strArray,
} from '../readers/fields.js';
import { DEFAULT_HOLDOUT } from '../splits.js';
import type { FileCandidate, FormatOptions, FormattedExample, TaskSpec } from './task-spec.js';
import { markSpan, removeMarkup, seq2seqSource } from './text.js';

function files<Row>(toRows: (v: RawRecord) => Row[]): Record<string, FileCandidate<Row>[]> {
  const c = (file: string): FileCandidate<Row> => ({ file, format: 'jsonl', toRows });
  return {
    train: [c('train.jsonl'), c('train.json')],
    validation: [c('val.jsonl'), c('validation.jsonl'), c('validation.json')],
  };
}

const BOOL = ['False', 'True'];
const halve = { kind: 'halve-validation', train: 'train', validation: 'validation' } as const;

function prefixOf(name: string, o: FormatOptions): string | undefined {
  return o.addPrefix ? name : undefined;
}

/** A task whose row is a few named text fields and a class label, formatted as `key: value` pairs. */
function simpleTask(spec: {
  name: string;
  description: string;
  fields: readonly string[];
  labelNames: readonly string[];
  metrics: TaskSpec['metrics'];
  /** Extra normalisation of the original layout (WSC's nested target). */
  flatten?: (v: RawRecord) => RawRecord;
  /** Source parts from the fields, default `field: value` for each field. */
  parts?: (row: Record<string, string>) => string[];
}): TaskSpec<{ fields: Record<string, string>; label: number }> {
  type Row = { fields: Record<string, string>; label: number };
  const toRows = (raw: RawRecord): Row[] => {
    const v = spec.flatten ? spec.flatten(raw) : raw;
    const fields: Record<string, string> = {};
    for (const f of spec.fields) {
      const x = field(v, f);
      // WSC span indices are numbers; keep them as decimal text so every field is a string.
      fields[f] = typeof x === 'number' && Number.isInteger(x) ? String(x) : str(v, f);
    }
    return [{ fields, label: label(v, 'label', spec.labelNames) }];
  };
  const parts =
    spec.parts ?? ((r: Record<string, string>) => spec.fields.flatMap((f) => [`${f}:`, r[f] as string]));
  return {
    name: spec.name,
    benchmark: 'superglue',
    description: spec.description,
    officialSplits: files(toRows),
    splitRule: halve,
    labels: spec.labelNames.map((_, i) => String(i)),
    metrics: spec.metrics,
    format: (row, o) => [
      { source: seq2seqSource(prefixOf(spec.name, o), parts(row.fields)), target: String(row.label) },
    ],
  };
}

const boolq = simpleTask({
  name: 'superglue-boolq',
  description: 'BoolQ: yes/no question about a passage. 0 = false, 1 = true.',
  fields: ['question', 'passage'],
  labelNames: BOOL,
  metrics: ['accuracy'],
});

const cb = simpleTask({
  name: 'superglue-cb',
  description: 'CommitmentBank: 0 = entailment, 1 = contradiction, 2 = neutral.',
  fields: ['premise', 'hypothesis'],
  labelNames: ['entailment', 'contradiction', 'neutral'],
  metrics: ['macro_f1', 'accuracy'],
});

const copa = simpleTask({
  name: 'superglue-copa',
  description: 'Choice of Plausible Alternatives: 0 = choice1, 1 = choice2.',
  fields: ['premise', 'choice1', 'choice2', 'question'],
  labelNames: ['choice1', 'choice2'],
  metrics: ['accuracy'],
});

const rte = simpleTask({
  name: 'superglue-rte',
  description: 'RTE (SuperGLUE copy): 0 = entailment, 1 = not_entailment.',
  fields: ['premise', 'hypothesis'],
  labelNames: ['entailment', 'not_entailment'],
  metrics: ['accuracy'],
});

const wic = simpleTask({
  name: 'superglue-wic',
  description: 'Word in Context: is the word used with the same sense in both sentences? 0 = no, 1 = yes.',
  fields: ['sentence1', 'sentence2', 'word'],
  labelNames: BOOL,
  metrics: ['accuracy'],
});

/** WSC: the original layout nests the spans under `target`; HF's wsc.fixed has them flat. */
const wsc = simpleTask({
  name: 'superglue-wsc.fixed',
  description: 'Winograd Schema: does the pronoun (#) refer to the marked noun (*)? 0 = no, 1 = yes.',
  fields: ['text', 'span1_index', 'span1_text', 'span2_index', 'span2_text'],
  labelNames: BOOL,
  metrics: ['accuracy'],
  flatten: (v) => (field(v, 'target') === undefined ? v : { ...v, ...obj(v, 'target') }),
  parts: (r) => {
    // As T5/ATTEMPT: mark span1 with *, then span2 with #, shifting span2's word index by the 2 inserted marks.
    const i1 = Number(r.span1_index);
    const i2 = Number(r.span2_index);
    let text = markSpan(r.text as string, r.span1_text as string, i1, '*');
    text = markSpan(text, r.span2_text as string, i2 + (i1 < i2 ? 2 : 0), '#');
    return ['text:', text];
  },
});

interface MultiRcRow {
  paragraph: string;
  question: string;
  answer: string;
  label: number;
  group: string;
}

/** MultiRC: the original file nests questions and answers in a passage; one row per answer either way. */
const multirc: TaskSpec<MultiRcRow> = (() => {
  const toRows = (v: RawRecord): MultiRcRow[] => {
    const p = field(v, 'passage');
    if (typeof p === 'object' && p !== null) {
      const passage = p as RawRecord;
      const paragraph = str(passage, 'text');
      const pid = field(v, 'idx') ?? '';
      const rows: MultiRcRow[] = [];
      for (const q of arr(passage, 'questions')) {
        if (typeof q !== 'object' || q === null)
          throw new RecordShapeError('questions to be objects', describeValue(q));
        const qr = q as RawRecord;
        const question = str(qr, 'question');
        const group = `${String(pid)}:${int(qr, 'idx')}`;
        for (const a of arr(qr, 'answers')) {
          if (typeof a !== 'object' || a === null)
            throw new RecordShapeError('answers to be objects', describeValue(a));
          const ar = a as RawRecord;
          rows.push({
            paragraph,
            question,
            answer: str(ar, 'text'),
            label: label(ar, 'label', ['0', '1']),
            group,
          });
        }
      }
      return rows;
    }
    const idx = obj(v, 'idx');
    return [
      {
        paragraph: str(v, 'paragraph'),
        question: str(v, 'question'),
        answer: str(v, 'answer'),
        label: label(v, 'label', ['0', '1']),
        group: `${int(idx, 'paragraph')}:${int(idx, 'question')}`,
      },
    ];
  };
  return {
    name: 'superglue-multirc',
    benchmark: 'superglue',
    description: 'MultiRC: is this answer to the question about the paragraph correct? 0 = no, 1 = yes.',
    officialSplits: files(toRows),
    splitRule: halve,
    labels: ['0', '1'],
    metrics: ['multirc_f1a', 'multirc_em'],
    groupOf: (row) => row.group,
    format: (row, o): FormattedExample[] => [
      {
        source: seq2seqSource(prefixOf('superglue-multirc', o), [
          'question:',
          removeMarkup(row.question),
          'answer:',
          removeMarkup(row.answer),
          'paragraph:',
          removeMarkup(row.paragraph),
        ]),
        target: String(row.label),
        group: row.group,
      },
    ],
  };
})();

interface RecordRow {
  passage: string;
  query: string;
  entities: string[];
  answers: string[];
}

/** ReCoRD: original nests queries (`qas`) under a passage with entity character spans (end inclusive). */
const record: TaskSpec<RecordRow> = (() => {
  const toRows = (v: RawRecord): RecordRow[] => {
    const p = field(v, 'passage');
    if (typeof p === 'object' && p !== null) {
      const passage = p as RawRecord;
      const text = str(passage, 'text');
      const spans = arr(passage, 'entities').map((e) => {
        const er = e as RawRecord;
        return text.slice(int(er, 'start'), int(er, 'end') + 1);
      });
      const entities = [...new Set(spans)].sort();
      return arr(v, 'qas').map((q) => {
        const qr = q as RawRecord;
        const answers = [...new Set(arr(qr, 'answers').map((a) => str(a as RawRecord, 'text')))];
        return { passage: text, query: str(qr, 'query'), entities, answers };
      });
    }
    return [
      {
        passage: str(v, 'passage'),
        query: str(v, 'query'),
        entities: strArray(v, 'entities'),
        answers: strArray(v, 'answers'),
      },
    ];
  };
  return {
    name: 'superglue-record',
    benchmark: 'superglue',
    description:
      'ReCoRD: which entity fills @placeholder in the query? Scored with SQuAD EM/F1 over the answers.',
    officialSplits: files(toRows),
    splitRule: { kind: 'holdout-train', train: 'train', validation: 'validation', holdout: DEFAULT_HOLDOUT },
    metrics: ['squad_em', 'squad_f1'],
    format: (row, o): FormattedExample[] => {
      // T5's ReCoRD preprocessing of the @highlight bullet lines.
      const passage = row.passage
        .replace(/(\.|\?|!|"|')\n@highlight\n/g, '$1 ')
        .replace(/\n@highlight\n/g, '. ');
      const source = seq2seqSource(prefixOf('superglue-record', o), [
        'query:',
        row.query,
        'entities:',
        row.entities.join(', '),
        'passage:',
        passage,
      ]);
      const answers = row.answers.length > 0 ? row.answers : ['<unk>'];
      const targets = o.duplicatePerAnswer ? answers : answers.slice(0, 1);
      return targets.map((target) => ({ source, target, answers }));
    },
  };
})();

export const SUPERGLUE_TASKS: readonly TaskSpec<never>[] = [
  boolq,
  cb,
  copa,
  multirc,
  record,
  rte,
  wic,
  wsc,
] as unknown as TaskSpec<never>[];
