/**
 * A job's run history: one record per optimizer step (loss per task, learning rate per parameter group, gradient
 * norm, examples/s) and one per evaluation. It is kept with the job in the bank: each committed version carries
 * the records since its parent as its `history.jsonl` attachment, so walking a version's parents gives its whole
 * history (`promptmesh bank history`), and a `train --out` folder has the same file. Prometheus gauges sample the
 * same numbers every 15 s; this keeps every step.
 */
import type { EvalReport, StepReport } from './trainer.js';

export const HISTORY_ATTACHMENT = 'history.jsonl';
export const HISTORY_MEDIA_TYPE = 'application/jsonl';

export interface StepRecord {
  kind: 'step';
  stage: string;
  /** Optimizer steps done after this one (1-based, as progress lines count). */
  step: number;
  /** Mean token loss of the global batch. */
  loss: number;
  /** Mean token loss per task present in the batch. */
  tasks: Record<string, number>;
  /** Learning rate each parameter group was updated with (schedule applied). */
  lr: Record<string, number>;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  examples: number;
  examplesPerSecond: number;
  /** ISO 8601, when the step ended. */
  time: string;
}

export interface EvalRecord {
  kind: 'eval';
  stage: string;
  /** Optimizer steps done when the evaluation ran. */
  step: number;
  split: string;
  /** Score per task, 0-100 (the task's main metric). */
  scores: Record<string, number>;
  /** Mean score of the trained tasks. */
  average: number;
  /** Predictions that were not a label, per task (generation). */
  invalid: Record<string, number>;
  time: string;
}

export type HistoryRecord = StepRecord | EvalRecord;

export class HistoryFormatError extends Error {
  override name = 'HistoryFormatError';
}

/** The step's record from a trainer StepReport (step index 0-based there, 1-based here). */
export function stepRecord(
  stage: string,
  r: StepReport,
  lr: Record<string, number>,
  time = new Date(),
): StepRecord {
  return {
    kind: 'step',
    stage,
    step: r.step + 1,
    loss: r.loss,
    tasks: { ...r.perTaskLoss },
    lr,
    gradNorm: r.gradNorm,
    examples: r.examples,
    examplesPerSecond: r.ms > 0 ? (r.examples * 1000) / r.ms : 0,
    time: time.toISOString(),
  };
}

export function evalRecord(stage: string, r: EvalReport, split: string, time = new Date()): EvalRecord {
  return {
    kind: 'eval',
    stage,
    step: r.step,
    split,
    scores: { ...r.scores },
    average: r.average,
    invalid: { ...r.invalid },
    time: time.toISOString(),
  };
}

/** JSON lines; non-finite losses (a diverged step) are written as null, not dropped. */
export function encodeHistory(records: readonly HistoryRecord[]): Uint8Array {
  const text = records.map((r) =>
    JSON.stringify(r, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)),
  );
  return new TextEncoder().encode(text.length > 0 ? `${text.join('\n')}\n` : '');
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const numOrNull = (v: unknown) => typeof v === 'number' || v === null;
const numMap = (v: unknown) => isObj(v) && Object.values(v).every(numOrNull);

/** Parses history JSON lines; a bad line is an error naming `where` and the line number. */
export function parseHistory(text: string, where: string): HistoryRecord[] {
  const out: HistoryRecord[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const bad = (why: string) => new HistoryFormatError(`${where}:${i + 1}: ${why}`);
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw bad(`not JSON (${(e as Error).message})`);
    }
    if (!isObj(v)) throw bad('not a JSON object');
    if (typeof v.stage !== 'string') throw bad("'stage' must be a string");
    if (typeof v.step !== 'number' || !Number.isInteger(v.step) || v.step < 0)
      throw bad("'step' must be an integer >= 0");
    if (v.kind === 'step') {
      if (!numOrNull(v.loss)) throw bad("'loss' must be a number");
      if (!numMap(v.tasks) || !numMap(v.lr)) throw bad("'tasks' and 'lr' must map names to numbers");
      if (!numOrNull(v.gradNorm) || typeof v.examplesPerSecond !== 'number')
        throw bad("'gradNorm' and 'examplesPerSecond' must be numbers");
    } else if (v.kind === 'eval') {
      if (!numMap(v.scores)) throw bad("'scores' must map task names to numbers");
      if (!numOrNull(v.average)) throw bad("'average' must be a number");
    } else {
      throw bad(`unknown record kind '${String(v.kind)}' (expected step or eval)`);
    }
    out.push(v as unknown as HistoryRecord);
  });
  return out;
}

/**
 * Records kept in memory until the version that carries them is committed. `take` hands out what the next
 * version should carry; `committed` forgets it once the commit succeeded (a failed commit keeps them for the next
 * try); `rollBack` drops records of steps a recovery is about to redo.
 */
export class HistoryBuffer {
  private pending: HistoryRecord[] = [];

  push(r: HistoryRecord): void {
    this.pending.push(r);
  }

  take(): HistoryRecord[] {
    return [...this.pending];
  }

  committed(count: number): void {
    this.pending = this.pending.slice(count);
  }

  /** Keeps records of stage `stage` up to `step` and of other stages; drops later steps of that stage. */
  rollBack(stage: string, step: number): void {
    this.pending = this.pending.filter((r) => r.stage !== stage || r.step <= step);
  }

  get size(): number {
    return this.pending.length;
  }
}

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/**
 * One CSV row per record; columns: kind, stage, step, time, loss, grad_norm, examples_per_second, then one
 * `loss/<task>`, `lr/<group>`, `score/<task>` column per name seen, `average`.
 */
export function historyToCsv(records: readonly HistoryRecord[]): string {
  const names = (pick: (r: HistoryRecord) => Record<string, unknown> | undefined) =>
    [...new Set(records.flatMap((r) => Object.keys(pick(r) ?? {})))].sort();
  const tasks = names((r) => (r.kind === 'step' ? r.tasks : undefined));
  const groups = names((r) => (r.kind === 'step' ? r.lr : undefined));
  const scored = names((r) => (r.kind === 'eval' ? r.scores : undefined));
  const header = [
    'kind',
    'stage',
    'step',
    'time',
    'loss',
    'grad_norm',
    'examples_per_second',
    ...tasks.map((t) => `loss/${t}`),
    ...groups.map((g) => `lr/${g}`),
    ...scored.map((t) => `score/${t}`),
    'average',
  ];
  const rows = records.map((r) => {
    const base = [r.kind, r.stage, r.step, r.time];
    if (r.kind === 'step') {
      return [
        ...base,
        r.loss,
        r.gradNorm,
        r.examplesPerSecond,
        ...tasks.map((t) => r.tasks[t]),
        ...groups.map((g) => r.lr[g]),
        ...scored.map(() => undefined),
        undefined,
      ];
    }
    return [
      ...base,
      undefined,
      undefined,
      undefined,
      ...tasks.map(() => undefined),
      ...groups.map(() => undefined),
      ...scored.map((t) => r.scores[t]),
      r.average,
    ];
  });
  return `${[header, ...rows].map((row) => row.map(csvCell).join(',')).join('\n')}\n`;
}
