/**
 * Draws a run history (train/history.ts) as one SVG: training loss per task on top, evaluation score per task
 * below, stages side by side on one step axis (each stage's steps continue where the previous stage ended, with a
 * dashed line and the stage's name at the boundary). No dependencies: the SVG is written by hand, so the picture
 * needs nothing but a browser to open.
 */
import type { HistoryRecord } from '../train/history.js';
import { escapeXml as esc, formatTick as fmt, niceTicks, PALETTE } from './svg-style.js';

export { niceTicks };

export interface PlotOptions {
  title?: string;
  width?: number;
  /** Exponential smoothing of the loss curves (0 = raw; the raw curve is drawn faintly behind). */
  smoothing?: number;
}

interface Series {
  name: string;
  points: [number, number][];
}

/** Stage boundaries and each stage's step offset on the shared axis, in the order stages first appear. */
function stageOffsets(records: readonly HistoryRecord[]): {
  offsets: Map<string, number>;
  bounds: [number, string][];
} {
  const order: string[] = [];
  const maxStep = new Map<string, number>();
  for (const r of records) {
    if (!maxStep.has(r.stage)) order.push(r.stage);
    maxStep.set(r.stage, Math.max(maxStep.get(r.stage) ?? 0, r.step));
  }
  const offsets = new Map<string, number>();
  const bounds: [number, string][] = [];
  let at = 0;
  for (const s of order) {
    offsets.set(s, at);
    bounds.push([at, s]);
    at += maxStep.get(s) ?? 0;
  }
  return { offsets, bounds };
}

function panel(
  series: Series[],
  colours: Map<string, string>,
  box: { x: number; y: number; w: number; h: number },
  xRange: [number, number],
  label: string,
  bounds: [number, string][],
  opts: { faint?: Series[]; markers?: boolean; yMin?: number },
): string {
  const all = [...series, ...(opts.faint ?? [])].flatMap((s) => s.points.map((p) => p[1]));
  const finite = all.filter((v) => Number.isFinite(v));
  let lo = opts.yMin ?? (finite.length ? Math.min(...finite) : 0);
  let hi = finite.length ? Math.max(...finite) : 1;
  if (hi - lo < 1e-9) {
    hi += 0.5;
    lo -= 0.5;
  }
  const yt = niceTicks(lo, hi, 5);
  lo = Math.min(lo, yt[0]!);
  hi = Math.max(hi, yt[yt.length - 1]!);
  const [x0, x1] = xRange;
  const sx = (v: number) => box.x + ((v - x0) / Math.max(1e-9, x1 - x0)) * box.w;
  const sy = (v: number) => box.y + box.h - ((v - lo) / (hi - lo)) * box.h;
  const parts: string[] = [];
  parts.push(
    `<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="#fff" stroke="#999"/>`,
  );
  for (const v of yt) {
    const y = sy(v).toFixed(1);
    parts.push(`<line x1="${box.x}" x2="${box.x + box.w}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(
      `<text x="${box.x - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(v)}</text>`,
    );
  }
  for (const v of niceTicks(x0, x1, 8)) {
    const x = sx(v).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${box.y + box.h}" y2="${box.y + box.h + 4}" stroke="#999"/>`);
    parts.push(`<text x="${x}" y="${box.y + box.h + 16}" text-anchor="middle">${fmt(v)}</text>`);
  }
  for (const [at, name] of bounds) {
    const x = sx(at).toFixed(1);
    if (at > x0) {
      parts.push(
        `<line x1="${x}" x2="${x}" y1="${box.y}" y2="${box.y + box.h}" stroke="#666" stroke-dasharray="4 3"/>`,
      );
    }
    parts.push(`<text x="${(sx(at) + 4).toFixed(1)}" y="${box.y + 12}" fill="#666">${esc(name)}</text>`);
  }
  parts.push(
    `<text x="${box.x - 44}" y="${box.y + box.h / 2}" transform="rotate(-90 ${box.x - 44} ${box.y + box.h / 2})" text-anchor="middle">${esc(label)}</text>`,
  );
  const path = (s: Series) =>
    s.points
      .filter((p) => Number.isFinite(p[1]))
      .map((p, i) => `${i === 0 ? 'M' : 'L'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`)
      .join(' ');
  for (const s of opts.faint ?? []) {
    parts.push(
      `<path d="${path(s)}" fill="none" stroke="${colours.get(s.name)}" stroke-opacity="0.25" stroke-width="1"/>`,
    );
  }
  for (const s of series) {
    const c = colours.get(s.name);
    parts.push(
      `<path d="${path(s)}" fill="none" stroke="${c}" stroke-width="1.8"><title>${esc(s.name)}</title></path>`,
    );
    if (opts.markers) {
      for (const [x, y] of s.points) {
        if (!Number.isFinite(y)) continue;
        parts.push(
          `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${c}"><title>${esc(s.name)} @ ${x}: ${y.toFixed(2)}</title></circle>`,
        );
      }
    }
  }
  return parts.join('\n');
}

/** The SVG text for `records`; throws when there is nothing to draw. */
export function plotHistorySvg(records: readonly HistoryRecord[], opts: PlotOptions = {}): string {
  if (records.length === 0) throw new Error('the history has no records: nothing to plot');
  const width = opts.width ?? 900;
  const smoothing = opts.smoothing ?? 0.9;
  const { offsets, bounds } = stageOffsets(records);
  const at = (r: HistoryRecord) => (offsets.get(r.stage) ?? 0) + r.step;
  const raw = new Map<string, [number, number][]>();
  const scores = new Map<string, [number, number][]>();
  for (const r of records) {
    if (r.kind === 'step') {
      for (const [t, l] of Object.entries(r.tasks)) {
        if (!raw.has(t)) raw.set(t, []);
        raw.get(t)!.push([at(r), l ?? Number.NaN]);
      }
    } else {
      for (const [t, s] of Object.entries(r.scores)) {
        if (!scores.has(t)) scores.set(t, []);
        scores.get(t)!.push([at(r), s ?? Number.NaN]);
      }
    }
  }
  const names = [...new Set([...raw.keys(), ...scores.keys()])].sort();
  const colours = new Map(names.map((n, i) => [n, PALETTE[i % PALETTE.length]!] as const));
  const smooth = (pts: [number, number][]): [number, number][] => {
    let m: number | undefined;
    return pts.map(([x, y]) => {
      if (Number.isFinite(y)) m = m === undefined ? y : smoothing * m + (1 - smoothing) * y;
      return [x, m ?? Number.NaN];
    });
  };
  const lossSeries = [...raw].map(([name, pts]) => ({ name, points: smooth(pts) }));
  const faint = smoothing > 0 ? [...raw].map(([name, points]) => ({ name, points })) : [];
  const scoreSeries = [...scores].map(([name, points]) => ({ name, points }));
  const xs = records.map(at);
  const xRange: [number, number] = [0, Math.max(1, ...xs)];
  const left = 70;
  const plotW = width - left - 30;
  const legendH = 22 * Math.ceil(names.length / 4) + 10;
  const top = opts.title ? 40 : 16;
  const h1 = 240;
  const h2 = scoreSeries.length > 0 ? 200 : 0;
  const gap = 50;
  const height = top + legendH + h1 + (h2 ? gap + h2 : 0) + 44;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" font-family="sans-serif" font-size="12">`,
    `<title>${esc(opts.title ?? 'training loss and evaluation score per task')}</title>`,
    `<rect width="100%" height="100%" fill="#fafafa"/>`,
  ];
  if (opts.title)
    parts.push(`<text x="${left}" y="24" font-size="16" font-weight="bold">${esc(opts.title)}</text>`);
  names.forEach((n, i) => {
    const x = left + (i % 4) * (plotW / 4);
    const y = top + 8 + 22 * Math.floor(i / 4);
    parts.push(`<rect x="${x}" y="${y - 5}" width="14" height="4" fill="${colours.get(n)}"/>`);
    parts.push(`<text x="${x + 20}" y="${y}" dominant-baseline="middle">${esc(n)}</text>`);
  });
  const y1 = top + legendH;
  parts.push(
    panel(
      lossSeries,
      colours,
      { x: left, y: y1, w: plotW, h: h1 },
      xRange,
      `training loss${smoothing > 0 ? ` (EMA ${smoothing})` : ''}`,
      bounds,
      { faint },
    ),
  );
  if (h2) {
    const y2 = y1 + h1 + gap;
    parts.push(
      panel(scoreSeries, colours, { x: left, y: y2, w: plotW, h: h2 }, xRange, 'eval score', bounds, {
        markers: true,
        yMin: 0,
      }),
    );
  }
  parts.push(
    `<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle">optimizer step (stages one after another)</text>`,
  );
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
