/**
 * SQuAD v1.1: the official JSON (`train-v1.1.json`, `dev-v1.1.json`) or a Hugging Face `squad` JSONL export.
 * Formatted as ATTEMPT does: `squad question: .. context: ..` with T5's punctuation padding applied to question,
 * context and answers; the first answer is the training target, every answer is kept for EM/F1.
 */
import { RecordShapeError } from '../errors.js';
import { arr, describeValue, obj, type RawRecord, str, strArray } from '../readers/fields.js';
import { DEFAULT_HOLDOUT } from '../splits.js';
import type { FileCandidate, TaskSpec } from './task-spec.js';
import { padPunctuation, seq2seqSource } from './text.js';

interface SquadRow {
  question: string;
  context: string;
  answers: string[];
}

/** Turns the official nested document into one record per question, each with its JSON path. */
function explodeSquad(doc: unknown): { path: string; value: RawRecord }[] {
  if (typeof doc !== 'object' || doc === null)
    throw new RecordShapeError('a SQuAD document object', describeValue(doc));
  const out: { path: string; value: RawRecord }[] = [];
  const data = arr(doc as RawRecord, 'data');
  data.forEach((article, a) => {
    const paragraphs = arr(article as RawRecord, 'paragraphs');
    paragraphs.forEach((para, p) => {
      const pr = para as RawRecord;
      const context = str(pr, 'context');
      arr(pr, 'qas').forEach((qa, q) => {
        out.push({ path: `data[${a}].paragraphs[${p}].qas[${q}]`, value: { ...(qa as RawRecord), context } });
      });
    });
  });
  return out;
}

function fromOfficial(v: RawRecord): SquadRow[] {
  const question = str(v, 'question');
  const answers = arr(v, 'answers').map((x) => str(x as RawRecord, 'text'));
  if (answers.length === 0) throw new RecordShapeError('at least one answer', 'none');
  return [{ question, context: str(v, 'context'), answers }];
}

function fromHf(v: RawRecord): SquadRow[] {
  const answers = strArray(obj(v, 'answers'), 'text');
  if (answers.length === 0) throw new RecordShapeError("at least one answer in 'answers.text'", 'none');
  return [{ question: str(v, 'question'), context: str(v, 'context'), answers }];
}

function candidates(official: string, split: string): FileCandidate<SquadRow>[] {
  return [
    { file: official, format: 'json', explode: explodeSquad, toRows: fromOfficial },
    { file: `${split}.jsonl`, format: 'jsonl', toRows: fromHf },
    { file: `${split}.json`, format: 'jsonl', toRows: fromHf },
  ];
}

export const squad: TaskSpec<SquadRow> = {
  name: 'squad',
  benchmark: 'squad',
  description: 'SQuAD v1.1 extractive question answering, generated as text.',
  officialSplits: {
    train: candidates('train-v1.1.json', 'train'),
    validation: candidates('dev-v1.1.json', 'validation'),
  },
  splitRule: { kind: 'holdout-train', train: 'train', validation: 'validation', holdout: DEFAULT_HOLDOUT },
  metrics: ['squad_em', 'squad_f1'],
  format: (row, o) => {
    const answers = row.answers.map(padPunctuation);
    return [
      {
        source: seq2seqSource(o.addPrefix ? 'squad' : undefined, [
          'question:',
          padPunctuation(row.question),
          'context:',
          padPunctuation(row.context),
        ]),
        target: answers[0] as string,
        answers,
      },
    ];
  },
};
