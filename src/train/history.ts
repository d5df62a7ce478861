/**
 * A job's run history: one record per optimizer step (loss per task, learning rate per parameter group, gradient
 * norm, examples/s) and one per evaluation. It is kept with the job in the bank: each committed version carries
 * the records since its parent as its `history.jsonl` attachment, so walking a version's parents gives its whole
 * history (`promptmesh bank history`), and a `train --out` folder has the same file. Prometheus gauges sample the
 * same numbers every 15 s; this keeps every step.
 */
import type { EvalMode } from './evaluate.js';
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

/** What `readBankHistory` needs of a bank: PromptBank has it, and so has the runtime's bank. */
export interface HistoryBank {
  head(job: string): Promise<unknown>;
  /** A version and its ancestors, newest first. */
  lineage(ref: string): Promise<readonly { id: string }[]>;
  attachment(id: string, name: string): Promise<Uint8Array | null>;
}

/**
 * The history of `ref` and its ancestors, oldest first. `ref` is a version (id, prefix, tag, JOB@head) or a bare
 * job name, read as JOB@head. Versions without a history attachment (imports, compositions, older versions)
 * contribute nothing.
 */
export async function readBankHistory(
  bank: HistoryBank,
  ref: string,
): Promise<{ records: HistoryRecord[]; versions: number; head: string }> {
  let resolved = ref;
  if (!ref.includes('@') && /^[A-Za-z0-9_-]{1,128}$/.test(ref) && (await bank.head(ref).catch(() => null))) {
    resolved = `${ref}@head`;
  }
  const chain = await bank.lineage(resolved);
  const records: HistoryRecord[] = [];
  for (const m of [...chain].reverse()) {
    const bytes = await bank.attachment(m.id, HISTORY_ATTACHMENT);
    if (!bytes) continue;
    records.push(...parseHistory(new TextDecoder().decode(bytes), `version ${m.id} ${HISTORY_ATTACHMENT}`));
  }
  return { records, versions: chain.length, head: chain[0]!.id };
}

/** Every line of stageScoreSummary ends with this, then the step (so `up` can find them in the coordinator's log). */
export const SCORE_SUMMARY_MARK = '(untrained -> trained at step ';

/** How an evaluation mode is named for people. */
const MODE_WORDS: Record<EvalMode, string> = { rank: 'label scoring', generate: 'generation' };

/**
 * One line per stage whose history has both an evaluation at step 0 (the untrained prompt, `evalAtStart`) and a
 * later one, in the order of `stages`: each task's score at step 0 -> at the evaluation whose prompts the stage
 * keeps (its best validation average, the earliest on ties; the last one unless `evalEvery` evaluated more), e.g.
 * `stage 'targets' (validation, label scoring): demo-entail 50.0 -> 63.0, demo-count 8.0 -> 15.0 (untrained ->
 * trained at step 60)`. `stages` names each stage's evaluation mode (the job's stages).
 */
export function stageScoreSummary(
  records: readonly HistoryRecord[],
  stages: readonly { name: string; train: { evalMode: EvalMode } }[],
): string[] {
  const lines: string[] = [];
  const score = (v: number | null | undefined) =>
    typeof v === 'number' && Number.isFinite(v) ? v.toFixed(1) : '-';
  for (const stage of stages) {
    const evals = records.filter((r): r is EvalRecord => r.kind === 'eval' && r.stage === stage.name);
    const before = evals.find((r) => r.step === 0);
    // The evaluation whose prompts the stage keeps: the highest average, the earliest on ties (one per step).
    const later = [...new Map(evals.filter((r) => r.step > 0).map((r) => [r.step, r])).values()].sort(
      (a, b) => a.step - b.step,
    );
    let after: EvalRecord | undefined;
    for (const r of later) if (!after || r.average > after.average) after = r;
    if (!before || !after) continue;
    const tasks = [...new Set([...Object.keys(after.scores), ...Object.keys(before.scores)])];
    const pairs = tasks.map((t) => `${t} ${score(before.scores[t])} -> ${score(after.scores[t])}`);
    const of = later.length > 1 ? `, the best of ${later.length} evaluations` : '';
    lines.push(
      `stage '${stage.name}' (${after.split}, ${MODE_WORDS[stage.train.evalMode]}): ${pairs.join(', ')} ` +
        `${SCORE_SUMMARY_MARK}${after.step}${of})`,
    );
  }
  return lines;
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
