import * as tf from '@tensorflow/tfjs-core';
import type { T5Model } from '../model/t5/index.js';
import {
  type EncoderInputs,
  MethodConfigError,
  type MethodContext,
  type MethodParam,
  MethodTensorShapeError,
  MissingMethodTensorError,
  type ParamSpec,
  type PromptBatch,
  type PromptMethod,
} from './method.js';
import { touchedParamNames } from './touched-params.js';

/**
 * What every method repeats, written once: its tensors created from `describe()` (trainable ones as params, the
 * others as frozen tensors, or all of them from a restored state), the tensors it derives from them (a stacked
 * copy, a pad embedding), the touched-parameter rule, and disposal of all of it. A method subclasses this,
 * calls `materialize` in its constructor (inside a try that calls `dispose()` on failure) and writes only its
 * forward pass.
 */
export abstract class MethodBase implements PromptMethod {
  abstract readonly name: string;
  readonly params: MethodParam[] = [];
  readonly frozen = new Map<string, tf.Tensor>();
  /** Tensors computed from the method's own (stacked sources, constant keys, a pad embedding), freed with it. */
  private readonly derived: tf.Tensor[] = [];

  constructor(readonly tasks: readonly string[]) {}

  abstract encoderInputs(model: T5Model, batch: PromptBatch): EncoderInputs;

  /** The shared-or-present-task rule (touched-params.ts). */
  touchedParams(batchTasks: readonly string[]): string[] {
    return touchedParamNames(this.params, batchTasks);
  }

  dispose(): void {
    for (const p of this.params) p.variable.dispose();
    for (const t of this.frozen.values()) t.dispose();
    tf.dispose(this.derived);
    this.params.length = 0;
    this.frozen.clear();
    this.derived.length = 0;
  }

  /** Creates the tensors `specs` describe into `params` and `frozen` (see materializeParams). */
  protected materialize(
    specs: readonly ParamSpec[],
    initial: (spec: ParamSpec) => Float32Array,
    restore?: MethodContext['restore'],
  ): void {
    const made = materializeParams(this.name, specs, initial, restore);
    this.params.push(...made.params);
    for (const [k, t] of made.frozen) this.frozen.set(k, t);
  }

  /** Registers a tensor derived from the method's own, so that `dispose()` frees it; returns it. */
  protected derive<T extends tf.Tensor>(t: T): T {
    this.derived.push(t);
    return t;
  }

  /** A tensor of the method by its `describe()` name, trainable or frozen. */
  protected tensor(name: string): tf.Tensor {
    const t = this.params.find((p) => p.name === name)?.variable ?? this.frozen.get(name);
    if (!t) throw new Error(`${this.name}: internal: no tensor '${name}'`);
    return t;
  }
}

/** What a stage input must be, for `readStageInput`'s check and its messages. */
export interface StageInputWant {
  /** The shape it must have. */
  shape: readonly number[];
  /** What it initialises, for the messages ('prompt', 'the bank', ...). */
  target: string;
  /** Words after the name in the "no input tensor" message (e.g. "for task 'rte'"). */
  context?: string;
  /** Where such a tensor comes from, added to the "no input tensor" message. */
  hint?: string;
  /** Where the shape comes from, added to the shape message (e.g. "(bankSize x dModel)"). */
  shapeNote?: string;
}

/**
 * A tensor an earlier stage handed over (MethodContext.inputs), by name, checked to have exactly `want.shape`:
 * the one way every method reads its frozen inputs (source prompts, a bank, a trained module), so a missing or
 * mis-shaped one is a MethodConfigError naming the config `field` that asked for it, in the same words everywhere.
 * Returns a copy.
 */
export function readStageInput(
  method: string,
  inputs: MethodContext['inputs'],
  field: string,
  name: string,
  want: StageInputWant,
): Float32Array {
  const t = inputs?.get(name);
  if (!t) {
    const available = [...(inputs?.keys() ?? [])].join(', ') || 'none';
    throw new MethodConfigError(
      method,
      field,
      `no input tensor '${name}'${want.context ? ` ${want.context}` : ''} (available: ${available})` +
        (want.hint ? `; ${want.hint}` : ''),
    );
  }
  const size = want.shape.reduce((a, b) => a * b, 1);
  if (
    t.shape.length !== want.shape.length ||
    t.shape.some((x, i) => x !== want.shape[i]) ||
    t.data.length !== size
  ) {
    throw new MethodConfigError(
      method,
      field,
      `'${name}' has shape [${t.shape.join(', ')}] but ${want.target} is [${want.shape.join(', ')}]` +
        (want.shapeNote ? ` ${want.shapeNote}` : ''),
    );
  }
  return Float32Array.from(t.data);
}

let instances = 0;

/**
 * Creates a method's tensors from its `describe()` specs: trainable ones as variables (its params), the others
 * as frozen tensors. One place for the details every method needs: the initial tensor is disposed once the
 * variable holds the value (tf.variable keeps it counted otherwise), variable names are unique per instance, and
 * a failing initialiser frees whatever was already created. With `restore` (MethodContext.restore) every value
 * comes from it instead, checked by name and shape before anything is created, and `initial` is never called.
 */
export function materializeParams(
  method: string,
  specs: readonly ParamSpec[],
  initial: (spec: ParamSpec) => Float32Array,
  restore?: MethodContext['restore'],
): { params: MethodParam[]; frozen: Map<string, tf.Tensor> } {
  if (restore) {
    checkRestore(method, specs, restore);
    initial = (spec) => Float32Array.from(restore.get(spec.name)!.data);
  }
  const instance = instances++;
  const params: MethodParam[] = [];
  const frozen = new Map<string, tf.Tensor>();
  try {
    for (const spec of specs) {
      const value = tf.tensor(initial(spec), spec.shape);
      if (!spec.trainable) {
        frozen.set(spec.name, value);
        continue;
      }
      params.push({
        name: spec.name,
        group: spec.group,
        variable: tf.variable(value, true, `${method}/${instance}/${spec.name}`),
        ...(spec.task !== undefined ? { task: spec.task } : {}),
      });
      value.dispose();
    }
  } catch (err) {
    for (const p of params) p.variable.dispose();
    for (const t of frozen.values()) t.dispose();
    throw err;
  }
  return { params, frozen };
}

/** Every tensor `specs` names is in `restore` with exactly its shape; errors name the tensor. */
export function checkRestore(
  method: string,
  specs: readonly ParamSpec[],
  restore: NonNullable<MethodContext['restore']>,
): void {
  for (const spec of specs) {
    const t = restore.get(spec.name);
    if (!t) throw new MissingMethodTensorError(method, spec.name, specs);
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (
      t.shape.length !== spec.shape.length ||
      t.shape.some((x, i) => x !== spec.shape[i]) ||
      t.data.length !== size
    ) {
      throw new MethodTensorShapeError(method, spec.name, t.shape, spec.shape);
    }
  }
}
