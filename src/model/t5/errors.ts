/** A tensor handed to the model has the wrong shape. Names the tensor and both shapes. */
export class ShapeMismatchError extends Error {
  override name = 'ShapeMismatchError';
  constructor(
    readonly tensor: string,
    readonly expected: readonly (number | null)[],
    readonly actual: readonly number[],
  ) {
    super(
      `${tensor}: expected shape [${expected.map((d) => (d === null ? '*' : d)).join(', ')}] but got [${actual.join(', ')}]`,
    );
  }
}

/** Throws ShapeMismatchError unless `actual` matches `expected` (null = any size). */
export function assertShape(
  tensor: string,
  actual: readonly number[],
  expected: readonly (number | null)[],
): void {
  if (actual.length !== expected.length || expected.some((d, i) => d !== null && d !== actual[i])) {
    throw new ShapeMismatchError(tensor, expected, actual);
  }
}
