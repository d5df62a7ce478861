/** Names of the metrics a task can list; `scoreTask` computes them. Every value is on a 0-100 scale. */
export type MetricName =
  | 'accuracy'
  | 'f1'
  | 'matthews'
  | 'pearson'
  | 'spearman'
  | 'macro_f1'
  | 'multirc_f1a'
  | 'multirc_em'
  | 'squad_em'
  | 'squad_f1';

export const METRIC_NAMES: readonly MetricName[] = Object.freeze([
  'accuracy',
  'f1',
  'matthews',
  'pearson',
  'spearman',
  'macro_f1',
  'multirc_f1a',
  'multirc_em',
  'squad_em',
  'squad_f1',
]);
