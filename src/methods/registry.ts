import type { MethodFactory } from './method.js';

const factories = new Map<string, MethodFactory>();

/** Adds a method; each method's folder calls this once from its index. */
export function registerMethod<C>(factory: MethodFactory<C>): void {
  if (factories.has(factory.name)) throw new Error(`method '${factory.name}' is registered twice`);
  factories.set(factory.name, factory as MethodFactory);
}

export class UnknownMethodError extends Error {
  override name = 'UnknownMethodError';
  constructor(readonly method: string) {
    super(`unknown method '${method}'; known methods: ${[...factories.keys()].sort().join(', ')}`);
  }
}

export function methodFactory(name: string): MethodFactory {
  const f = factories.get(name);
  if (!f) throw new UnknownMethodError(name);
  return f;
}

export function methodNames(): string[] {
  return [...factories.keys()].sort();
}
