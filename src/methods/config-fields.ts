import { MethodConfigError } from './method.js';

/**
 * The largest size a method config may give (see ConfigReader.int): 65,536 rows of a T5-large prompt are 256 MB,
 * far beyond what any method uses (prompts of 100 tokens, TPT's bank of 600).
 */
export const MAX_METHOD_SIZE = 65_536;

/** Small typed readers for method configs: each error names the method and the field. */
export class ConfigReader {
  private readonly seen = new Set<string>();
  constructor(
    readonly method: string,
    private readonly raw: Readonly<Record<string, unknown>>,
  ) {}

  /**
   * A method's integers are sizes (prompt tokens, slots, dimensions, bank rows, top-k): each becomes tensor rows
   * that every worker holds, so all are bounded by MAX_METHOD_SIZE unless a field says otherwise.
   */
  int(field: string, fallback: number, min = 0, max = MAX_METHOD_SIZE): number {
    const v = this.take(field, fallback);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new MethodConfigError(
        this.method,
        field,
        `expected an integer from ${min} to ${max} (a size that becomes tensor rows every worker holds), got ${JSON.stringify(v)}`,
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
