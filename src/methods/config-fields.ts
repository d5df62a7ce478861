import { MethodConfigError } from './method.js';

/** Small typed readers for method configs: each error names the method and the field. */
export class ConfigReader {
  private readonly seen = new Set<string>();
  constructor(
    readonly method: string,
    private readonly raw: Readonly<Record<string, unknown>>,
  ) {}

  int(field: string, fallback: number, min = 0): number {
    const v = this.take(field, fallback);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      throw new MethodConfigError(
        this.method,
        field,
        `expected an integer >= ${min}, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  number(field: string, fallback: number, min = Number.NEGATIVE_INFINITY): number {
    const v = this.take(field, fallback);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      throw new MethodConfigError(
        this.method,
        field,
        `expected a number >= ${min}, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.take(field, fallback);
    if (typeof v !== 'boolean')
      throw new MethodConfigError(this.method, field, `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  oneOf<T extends string>(field: string, choices: readonly T[], fallback: T): T {
    const v = this.take(field, fallback);
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
      throw new MethodConfigError(
        this.method,
        field,
        `expected one of ${choices.join(' | ')}, got ${JSON.stringify(v)}`,
      );
    }
    return v as T;
  }

  optionalString(field: string): string | undefined {
    const v = this.take(field, undefined);
    if (v !== undefined && typeof v !== 'string') {
      throw new MethodConfigError(this.method, field, `expected a string, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  /**
   * A name for every key (a string) or a name per key (an object of strings): absent, undefined. Used where each
   * task may start from another stage's tensor.
   */
  optionalStringMap(field: string): string | Record<string, string> | undefined {
    const v = this.take(field, undefined);
    if (v === undefined || typeof v === 'string') return v;
    const ok =
      typeof v === 'object' &&
      v !== null &&
      !Array.isArray(v) &&
      Object.values(v).every((x) => typeof x === 'string' && x.length > 0);
    if (!ok) {
      throw new MethodConfigError(
        this.method,
        field,
        `expected a tensor name or {task: tensor name}, got ${JSON.stringify(v)}`,
      );
    }
    return { ...(v as Record<string, string>) };
  }

  stringList(field: string, fallback: readonly string[]): string[] {
    const v = this.take(field, fallback);
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      throw new MethodConfigError(this.method, field, `expected a list of strings, got ${JSON.stringify(v)}`);
    }
    return [...(v as string[])];
  }

  /** Rejects fields nobody read: a typo in a config must not silently fall back to a default. */
  done(): void {
    const unknown = Object.keys(this.raw).filter((k) => !this.seen.has(k) && k !== 'method');
    if (unknown.length > 0) {
      throw new MethodConfigError(
        this.method,
        unknown[0]!,
        `unknown option (known: ${[...this.seen].sort().join(', ')})`,
      );
    }
  }

  private take(field: string, fallback: unknown): unknown {
    this.seen.add(field);
    return field in this.raw ? this.raw[field] : fallback;
  }
}
