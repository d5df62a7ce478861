/**
 * Which of a method's trainable tensors a batch touches: a tensor shared by all tasks (no `task`) always, a
 * task's own tensor when that task is in the batch. Every other trainable tensor gets exactly zero gradient from
 * the batch, so the trainer differentiates only these and the sparse all-reduce sends only these.
 *
 * The one place this rule lives: methods apply it to their params (MethodBase.touchedParams), the coordinator to
 * `describe()` specs when it plans a step. The conformance suite (test/methods/conformance.test.ts) checks that
 * every registered method's gradients follow it.
 */
export function touchedParamNames(
  tensors: readonly { name: string; task?: string; trainable?: boolean }[],
  batchTasks: Iterable<string>,
): string[] {
  const present = new Set(batchTasks);
  return tensors
    .filter((t) => t.trainable !== false && (t.task === undefined || present.has(t.task)))
    .map((t) => t.name);
}
