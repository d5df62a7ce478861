/**
 * Scores a task's predictions with every metric the task lists, and the task score used for model selection:
 * the mean of those metrics (what ATTEMPT averages per task).
 */
import type { FormattedExample } from '../tasks/task-spec.js';
import { accuracy } from './accuracy.js';
import { pearson, spearman } from './correlation.js';
import { binaryF1 } from './f1.js';
import { macroF1 } from './macro-f1.js';
import { matthewsCorrelation } from './matthews.js';
import type { MetricName } from './metric-name.js';
import { multircExactMatch, multircF1a } from './multirc.js';
import { parseScores } from './regression-scores.js';
import { squadScores } from './squad.js';

export interface TaskScores {
  metrics: Partial<Record<MetricName, number>>;
  /** Mean of the listed metrics. */
  score: number;
  /** Predictions outside the label set (classification) or not numbers (STS-B). */
  invalid: number;
}

/** What scoring needs from a task: its metrics and, for classification, its label words. */
export interface ScoringSpec {
  metrics: readonly MetricName[];
  labels?: readonly string[];
}

export function scoreTask(
  spec: ScoringSpec,
  predictions: readonly string[],
  examples: readonly Pick<FormattedExample, 'target' | 'answers' | 'group'>[],
): TaskScores {
  const targets = examples.map((e) => e.target);
  const metrics: Partial<Record<MetricName, number>> = {};
  const binary = { negative: spec.labels?.[0] ?? '0', positive: spec.labels?.[1] ?? '1' };
  let invalid = 0;
  if (spec.labels) {
    const allowed = new Set(spec.labels);
    for (const p of predictions) if (!allowed.has(p.trim())) invalid++;
  }
  const scores = () => {
    const parsed = parseScores(predictions, targets);
    invalid = parsed.invalid;
    return parsed;
  };
  for (const m of spec.metrics) {
    switch (m) {
      case 'accuracy':
        metrics.accuracy = accuracy(predictions, targets);
        break;
      case 'f1':
        metrics.f1 = binaryF1(predictions, targets, binary);
        break;
      case 'matthews':
        metrics.matthews = matthewsCorrelation(predictions, targets, binary);
        break;
      case 'pearson': {
        const s = scores();
        metrics.pearson = pearson(s.predictions, s.targets);
        break;
      }
      case 'spearman': {
        const s = scores();
        metrics.spearman = spearman(s.predictions, s.targets);
        break;
      }
      case 'macro_f1':
        metrics.macro_f1 = macroF1(predictions, targets, spec.labels ?? []);
        break;
      case 'multirc_f1a':
        metrics.multirc_f1a = multircF1a(predictions, targets, binary);
        break;
      case 'multirc_em':
        metrics.multirc_em = multircExactMatch(
          predictions,
          targets,
          examples.map((e, i) => e.group ?? String(i)),
        );
        break;
      case 'squad_em':
      case 'squad_f1': {
        const s = squadScores(
          predictions,
          examples.map((e) => e.answers ?? [e.target]),
        );
        if (m === 'squad_em') metrics.squad_em = s.em;
        else metrics.squad_f1 = s.f1;
        break;
      }
    }
  }
  const values = spec.metrics.map((m) => metrics[m] as number);
  const score = values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
  return { metrics, score, invalid };
}
