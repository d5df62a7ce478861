/**
 * GLUE tasks: the original TSV layouts (gluebenchmark.com download) and Hugging Face `glue/<config>` JSONL
 * exports. Rows are normalised to the Hugging Face field meaning, labels to Hugging Face label indices, and
 * targets are the label index as a string, as in ATTEMPT (`str(example['label'])`).
 */
import { label, num, type RawRecord, str } from '../readers/fields.js';
import { DEFAULT_HOLDOUT } from '../splits.js';
import type { FileCandidate, FormatOptions, FormattedExample, TaskSpec } from './task-spec.js';
import { STSB_GRID_LABELS, seq2seqSource, stsbTarget } from './text.js';

/** Every GLUE/SuperGLUE JSONL split may be exported as `.jsonl` or (HF's default name) `.json`. */
function jsonl<Row>(split: string, toRows: (v: RawRecord) => Row[]): FileCandidate<Row>[] {
  return [
    { file: `${split}.jsonl`, format: 'jsonl', toRows },
    { file: `${split}.json`, format: 'jsonl', toRows },
  ];
}

interface SingleRow {
  text: string;
  label: number;
}
interface PairRow {
  a: string;
  b: string;
  label: number;
}
interface ScoreRow {
  a: string;
  b: string;
  score: number;
}

const BINARY = ['0', '1'];
const NLI2 = ['entailment', 'not_entailment'];
const NLI3 = ['entailment', 'neutral', 'contradiction'];

function prefixOf(name: string, o: FormatOptions): string | undefined {
  return o.addPrefix ? name : undefined;
}

function pairFormatter(name: string, keyA: string, keyB: string) {
  return (row: PairRow, o: FormatOptions): FormattedExample[] => [
    { source: seq2seqSource(prefixOf(name, o), [keyA, row.a, keyB, row.b]), target: String(row.label) },
  ];
}

/** A GLUE pair-classification task (two texts, class label). */
function pairTask(spec: {
  name: string;
  description: string;
  labelNames: readonly string[];
  prefixes: [string, string];
  tsv: { columns: [string, string, string]; header?: true };
  json: [string, string];
  splitRule: TaskSpec['splitRule'];
  metrics: TaskSpec['metrics'];
  devFiles?: Record<string, string>;
}): TaskSpec<PairRow> {
  const [ca, cb, cl] = spec.tsv.columns;
  const fromTsv = (v: RawRecord): PairRow[] => [
    { a: str(v, ca), b: str(v, cb), label: label(v, cl, spec.labelNames) },
  ];
  const [ja, jb] = spec.json;
  const fromJson = (v: RawRecord): PairRow[] => [
    { a: str(v, ja), b: str(v, jb), label: label(v, 'label', spec.labelNames) },
  ];
  const tsv = (file: string): FileCandidate<PairRow> => ({
    file,
    format: 'tsv',
    header: true,
    requiredColumns: [ca, cb, cl],
    toRows: fromTsv,
  });
  const dev = spec.devFiles ?? { validation: 'dev.tsv' };
  const officialSplits: Record<string, FileCandidate<PairRow>[]> = {
    train: [tsv('train.tsv'), ...jsonl('train', fromJson)],
  };
  for (const [split, file] of Object.entries(dev))
    officialSplits[split] = [tsv(file), ...jsonl(split, fromJson)];
  return {
    name: spec.name,
    benchmark: 'glue',
    description: spec.description,
    officialSplits,
    splitRule: spec.splitRule,
    labels: spec.labelNames.map((_, i) => String(i)),
    metrics: spec.metrics,
    format: pairFormatter(spec.name, spec.prefixes[0], spec.prefixes[1]),
  };
}

const halve = { kind: 'halve-validation', train: 'train', validation: 'validation' } as const;
const holdout = {
  kind: 'holdout-train',
  train: 'train',
  validation: 'validation',
  holdout: DEFAULT_HOLDOUT,
} as const;

/** CoLA's train/dev TSVs have no header: source, label, the author's mark ('*' or empty), sentence. */
const cola: TaskSpec<SingleRow> = (() => {
  const fromTsv = (v: RawRecord): SingleRow[] => [{ text: str(v, '3'), label: label(v, '1', BINARY) }];
  const fromJson = (v: RawRecord): SingleRow[] => [
    { text: str(v, 'sentence'), label: label(v, 'label', BINARY) },
  ];
  const tsv = (file: string): FileCandidate<SingleRow> => ({
    file,
    format: 'tsv',
    header: false,
    columns: 4,
    toRows: fromTsv,
  });
  return {
    name: 'cola',
    benchmark: 'glue',
    description: 'Corpus of Linguistic Acceptability: is the sentence grammatical? 0 = no, 1 = yes.',
    officialSplits: {
      train: [tsv('train.tsv'), ...jsonl('train', fromJson)],
      validation: [tsv('dev.tsv'), ...jsonl('validation', fromJson)],
    },
    splitRule: halve,
    labels: BINARY,
    metrics: ['matthews'],
    format: (row, o) => [
      { source: seq2seqSource(prefixOf('cola', o), ['sentence:', row.text]), target: String(row.label) },
    ],
  };
})();

const sst2: TaskSpec<SingleRow> = (() => {
  const fromTsv = (v: RawRecord): SingleRow[] => [
    { text: str(v, 'sentence'), label: label(v, 'label', BINARY) },
  ];
  const fromJson = fromTsv;
  const tsv = (file: string): FileCandidate<SingleRow> => ({
    file,
    format: 'tsv',
    header: true,
    requiredColumns: ['sentence', 'label'],
    toRows: fromTsv,
  });
  return {
    name: 'sst2',
    benchmark: 'glue',
    description: 'Stanford Sentiment Treebank: 0 = negative, 1 = positive.',
    officialSplits: {
      train: [tsv('train.tsv'), ...jsonl('train', fromJson)],
      validation: [tsv('dev.tsv'), ...jsonl('validation', fromJson)],
    },
    splitRule: holdout,
    labels: BINARY,
    metrics: ['accuracy'],
    format: (row, o) => [
      { source: seq2seqSource(prefixOf('sst2', o), ['sentence:', row.text]), target: String(row.label) },
    ],
  };
})();

/** MRPC's TSV header is 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String' (Quality is the 0/1 label). */
const mrpc = pairTask({
  name: 'mrpc',
  description: 'Microsoft Research Paraphrase Corpus: 1 = paraphrase.',
  labelNames: BINARY,
  prefixes: ['sentence1:', 'sentence2:'],
  tsv: { columns: ['#1 String', '#2 String', 'Quality'] },
  json: ['sentence1', 'sentence2'],
  splitRule: halve,
  metrics: ['f1', 'accuracy'],
});

const qqp = pairTask({
  name: 'qqp',
  description: 'Quora Question Pairs: 1 = duplicate.',
  labelNames: BINARY,
  prefixes: ['question1:', 'question2:'],
  tsv: { columns: ['question1', 'question2', 'is_duplicate'] },
  json: ['question1', 'question2'],
  splitRule: holdout,
  metrics: ['f1', 'accuracy'],
});

/** MNLI: TSV columns by header (sentence1, sentence2, gold_label); validation = mismatched, test = matched. */
const mnli = pairTask({
  name: 'mnli',
  description: 'Multi-Genre NLI: 0 = entailment, 1 = neutral, 2 = contradiction.',
  labelNames: NLI3,
  prefixes: ['premise:', 'hypothesis:'],
  tsv: { columns: ['sentence1', 'sentence2', 'gold_label'] },
  json: ['premise', 'hypothesis'],
  splitRule: {
    kind: 'fixed',
    train: 'train',
    validation: 'validation_mismatched',
    test: 'validation_matched',
  },
  metrics: ['accuracy'],
  devFiles: { validation_matched: 'dev_matched.tsv', validation_mismatched: 'dev_mismatched.tsv' },
});

const qnli = pairTask({
  name: 'qnli',
  description: 'Question NLI: does the sentence answer the question? 0 = entailment, 1 = not_entailment.',
  labelNames: NLI2,
  prefixes: ['question:', 'sentence:'],
  tsv: { columns: ['question', 'sentence', 'label'] },
  json: ['question', 'sentence'],
  splitRule: holdout,
  metrics: ['accuracy'],
});

const rte = pairTask({
  name: 'rte',
  description: 'Recognising Textual Entailment: 0 = entailment, 1 = not_entailment.',
  labelNames: NLI2,
  prefixes: ['sentence1:', 'sentence2:'],
  tsv: { columns: ['sentence1', 'sentence2', 'label'] },
  json: ['sentence1', 'sentence2'],
  splitRule: halve,
  metrics: ['accuracy'],
});

const wnli = pairTask({
  name: 'wnli',
  description: 'Winograd NLI: 1 = entailment.',
  labelNames: BINARY,
  prefixes: ['sentence1:', 'sentence2:'],
  tsv: { columns: ['sentence1', 'sentence2', 'label'] },
  json: ['sentence1', 'sentence2'],
  splitRule: halve,
  metrics: ['accuracy'],
});

/** STS-B: 10-column TSV with header; sentence1, sentence2, score in [0, 5]. */
const stsb: TaskSpec<ScoreRow> = (() => {
  const check = (score: number): number => {
    if (score < 0 || score > 5) throw new RangeError(`STS-B score ${score} outside [0, 5]`);
    return score;
  };
  const fromTsv = (v: RawRecord): ScoreRow[] => [
    { a: str(v, 'sentence1'), b: str(v, 'sentence2'), score: check(num(v, 'score')) },
  ];
  const fromJson = (v: RawRecord): ScoreRow[] => [
    { a: str(v, 'sentence1'), b: str(v, 'sentence2'), score: check(num(v, 'label')) },
  ];
  const tsv = (file: string): FileCandidate<ScoreRow> => ({
    file,
    format: 'tsv',
    header: true,
    requiredColumns: ['sentence1', 'sentence2', 'score'],
    toRows: fromTsv,
  });
  return {
    name: 'stsb',
    benchmark: 'glue',
    description: 'Semantic Textual Similarity: a score in [0, 5], emitted as text on the 0.2 grid.',
    officialSplits: {
      train: [tsv('train.tsv'), ...jsonl('train', fromJson)],
      validation: [tsv('dev.tsv'), ...jsonl('validation', fromJson)],
    },
    splitRule: halve,
    labels: STSB_GRID_LABELS,
    metrics: ['pearson', 'spearman'],
    format: (row, o) => [
      {
        source: seq2seqSource(prefixOf('stsb', o), ['sentence1:', row.a, 'sentence2:', row.b]),
        target: stsbTarget(row.score, o.stsbRounding),
      },
    ],
  };
})();

export const GLUE_TASKS: readonly TaskSpec<never>[] = [
  cola,
  sst2,
  mrpc,
  qqp,
  stsb,
  mnli,
  qnli,
  rte,
  wnli,
] as unknown as TaskSpec<never>[];
