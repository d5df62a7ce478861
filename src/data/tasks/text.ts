/** Text transformations shared by task formatters, as in the T5 / ATTEMPT preprocessors. */

/**
 * T5's `pad_punctuation`: spaces around every character that is not a letter, digit, mark, underscore or space,
 * then collapses whitespace. ATTEMPT applies it to SQuAD question, context and answer.
 */
export function padPunctuation(text: string): string {
  return text
    .replace(/([^_\s\p{N}\p{L}\p{M}])/gu, ' $1 ')
    .replace(/\s+/gu, ' ')
    .trim();
}

/** ATTEMPT's MultiRC `remove_markup`: `<br>` becomes a space, `<b>`/`</b>` disappear. */
export function removeMarkup(text: string): string {
  return text.replace(/<br>/g, ' ').replace(/<(\/)?b>/g, '');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * T5's WSC `_mark_span`: surrounds the word-aligned occurrence of `span` starting at word `index` with `mark`.
 * T5 puts the span text into the regex unescaped; we escape it so a span like "Mr." cannot match "Mrs".
 */
export function markSpan(text: string, span: string, index: number, mark: string): string {
  const pattern = new RegExp(`^((?:\\S+\\s){${index}})(${escapeRegExp(span)})`);
  return text.replace(pattern, (_m, before: string, word: string) => `${before}${mark} ${word} ${mark}`);
}

/** Python's round-half-to-even for one decimal (numpy `np.round(x, 1)`). */
export function roundHalfEven1(x: number): number {
  const y = x * 10;
  const f = Math.floor(y);
  const d = y - f;
  let r: number;
  if (Math.abs(d - 0.5) < 1e-9) r = f % 2 === 0 ? f : f + 1;
  else r = Math.round(y);
  return r / 10;
}

/**
 * STS-B target string. 'grid': nearest multiple of 0.2 (what ATTEMPT's `round_stsb_target` meant:
 * round(x * 5) / 5). 'released': `np.round((x * 5) / 5, 1)`, i.e. plain 1-decimal rounding, the released bug.
 */
export function stsbTarget(score: number, rounding: 'grid' | 'released'): string {
  const v = rounding === 'grid' ? Math.round(score * 5) / 5 : roundHalfEven1(score);
  return v.toFixed(1);
}

/** The 26 label strings of the 0.2 grid, '0.0' .. '5.0' (ATTEMPT's STS-B labels_list). */
export const STSB_GRID_LABELS: readonly string[] = Object.freeze(
  Array.from({ length: 26 }, (_, i) => ((i * 2) / 10).toFixed(1)),
);

/** Joins fields the way ATTEMPT's `seq2seq_format` does: prefix, then every part, space-separated. */
export function seq2seqSource(prefix: string | undefined, parts: readonly string[]): string {
  return (prefix === undefined ? parts : [prefix, ...parts]).join(' ');
}
