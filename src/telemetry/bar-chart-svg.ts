/**
 * A grouped bar chart as one self-contained SVG: per group (e.g. a task) one bar per series (e.g. a method) at its
 * value, with an optional whisker (value +- spread), an optional marker (a second value of the same series, e.g.
 * before training) and an optional dashed reference line across the group (e.g. chance). Written by hand in the
 * style of plot-svg.ts, so it needs nothing but a browser.
 *
 * Every drawn element names what it shows: bars carry class="bar" and data-group / data-series, whiskers
 * class="whisker", markers class="marker", reference lines class="reference", so a test (or a script) can read the
 * chart back.
 */
import { escapeXml as esc, formatTick, niceTicks, PALETTE } from './svg-style.js';

export interface BarValue {
  value: number;
  /** Half the whisker's length; absent or not finite: no whisker. */
  spread?: number | null;
  /** A second value drawn as a marker on the bar; absent: none. */
  marker?: number;
}

export interface BarChartData {
  /** The x axis: one cluster of bars per group; `reference` draws a dashed line across the cluster. */
  groups: readonly { name: string; reference?: number }[];
  /** One bar per group in each series; `values[i]` belongs to `groups[i]` (undefined: no bar there). */
  series: readonly { name: string; values: readonly (BarValue | undefined)[] }[];
}

export interface BarChartOptions {
  title: string;
  /** Lines under the title (settings, seeds...), separated by newlines. */
  subtitle?: string;
  yLabel: string;
  xLabel?: string;
  /** Legend text for the whisker, the marker and the reference line (each shown only when one is drawn). */
  spreadLabel?: string;
  markerLabel?: string;
  referenceLabel?: string;
  width?: number;
  height?: number;
  /** The y axis starts here (default 0) and ends at least at `yMax`. */
  yMin?: number;
  yMax?: number;
}

const n1 = (v: number) => v.toFixed(1);

/** The SVG text of the chart; throws when there is no group or no series. */
export function barChartSvg(data: BarChartData, opts: BarChartOptions): string {
  const { groups, series } = data;
  if (groups.length === 0 || series.length === 0)
    throw new Error('bar chart: no groups or no series to draw');
  for (const s of series) {
    if (s.values.length !== groups.length) {
      throw new Error(
        `bar chart: series '${s.name}' has ${s.values.length} values for ${groups.length} groups`,
      );
    }
  }
  const width = opts.width ?? Math.max(900, 120 + groups.length * (40 + 34 * series.length));
  const height = opts.height ?? 460;
  const colours = new Map(series.map((s, i) => [s.name, PALETTE[i % PALETTE.length]!] as const));
  const spreadOf = (v: BarValue) => (v.spread != null && Number.isFinite(v.spread) ? v.spread : 0);
  const tops: number[] = [];
  const bottoms: number[] = [];
  let anySpread = false;
  let anyMarker = false;
  for (const s of series) {
    for (const v of s.values) {
      if (!v || !Number.isFinite(v.value)) continue;
      tops.push(v.value + spreadOf(v));
      bottoms.push(v.value - spreadOf(v));
      if (spreadOf(v) > 0) anySpread = true;
      if (v.marker !== undefined && Number.isFinite(v.marker)) {
        tops.push(v.marker);
        bottoms.push(v.marker);
        anyMarker = true;
      }
    }
  }
  const refs = groups
    .map((g) => g.reference)
    .filter((r): r is number => r !== undefined && Number.isFinite(r));
  let lo = Math.min(opts.yMin ?? 0, ...bottoms, ...refs);
  let hi = Math.max(opts.yMax ?? lo + 1, ...tops, ...refs);
  const ticks = niceTicks(lo, hi, 6);
  lo = Math.min(lo, ticks[0]!);
  hi = Math.max(hi, ticks[ticks.length - 1]!);

  const left = 70;
  const right = 20;
  // Legend: the series, then what the whisker, marker and dashed line mean; wrapped into rows.
  const legend: { symbol: (x: number, y: number) => string; label: string }[] = series.map((s) => ({
    symbol: (x, y) => `<rect x="${x}" y="${y - 6}" width="14" height="12" fill="${colours.get(s.name)}"/>`,
    label: s.name,
  }));
  if (anySpread && opts.spreadLabel) {
    legend.push({
      symbol: (x, y) =>
        `<path d="M${x + 7},${y - 7} V${y + 7} M${x + 3},${y - 7} H${x + 11} M${x + 3},${y + 7} H${x + 11}" stroke="#333" fill="none"/>`,
      label: opts.spreadLabel,
    });
  }
  if (anyMarker && opts.markerLabel) {
    legend.push({
      symbol: (x, y) =>
        `<line x1="${x}" x2="${x + 14}" y1="${y}" y2="${y}" stroke="#000" stroke-width="2.5"/>`,
      label: opts.markerLabel,
    });
  }
  if (refs.length > 0 && opts.referenceLabel) {
    legend.push({
      symbol: (x, y) =>
        `<line x1="${x}" x2="${x + 14}" y1="${y}" y2="${y}" stroke="#c00" stroke-dasharray="4 3" stroke-width="1.5"/>`,
      label: opts.referenceLabel,
    });
  }
  const subtitle = opts.subtitle ? opts.subtitle.split('\n') : [];
  const legendTop = 48 + 16 * subtitle.length;
  const placed: { x: number; row: number }[] = [];
  let lx = left;
  let row = 0;
  for (const item of legend) {
    const w = 34 + 7 * item.label.length;
    if (lx > left && lx + w > width - right) {
      lx = left;
      row += 1;
    }
    placed.push({ x: lx, row });
    lx += w;
  }
  const top = legendTop + 20 * (row + 1) + 6;
  const bottom = opts.xLabel ? 64 : 46;
  const box = { x: left, y: top, w: width - left - right, h: height - top - bottom };
  const sy = (v: number) => box.y + box.h - ((v - lo) / (hi - lo)) * box.h;
  const groupW = box.w / groups.length;
  const barW = (groupW * 0.8) / series.length;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" font-family="sans-serif" font-size="12">`,
    `<title>${esc(opts.title)}</title>`,
    `<rect width="100%" height="100%" fill="#fafafa"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">${esc(opts.title)}</text>`,
  ];
  subtitle.forEach((line, i) => {
    parts.push(`<text x="${left}" y="${44 + 16 * i}" fill="#444">${esc(line)}</text>`);
  });
  legend.forEach((item, i) => {
    const { x, row: r } = placed[i]!;
    const y = legendTop + 20 * r;
    parts.push(
      item.symbol(x, y),
      `<text x="${x + 20}" y="${y}" dominant-baseline="middle">${esc(item.label)}</text>`,
    );
  });

  parts.push(
    `<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="#fff" stroke="#999"/>`,
  );
  for (const v of ticks) {
    const y = n1(sy(v));
    parts.push(`<line x1="${box.x}" x2="${box.x + box.w}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(
      `<text x="${box.x - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${formatTick(v)}</text>`,
    );
  }
  const base = sy(Math.max(lo, Math.min(hi, 0)));
  groups.forEach((g, gi) => {
    const gx = box.x + gi * groupW;
    parts.push(
      `<text x="${n1(gx + groupW / 2)}" y="${box.y + box.h + 18}" text-anchor="middle" class="group-label">${esc(g.name)}</text>`,
    );
    if (gi > 0) {
      parts.push(`<line x1="${n1(gx)}" x2="${n1(gx)}" y1="${box.y}" y2="${box.y + box.h}" stroke="#ddd"/>`);
    }
    series.forEach((s, si) => {
      const v = s.values[gi];
      if (!v || !Number.isFinite(v.value)) return;
      const x = gx + groupW * 0.1 + si * barW;
      const y = sy(v.value);
      const c = colours.get(s.name)!;
      const spread = spreadOf(v);
      const tip =
        `${s.name}, ${g.name}: ${v.value.toFixed(2)}` +
        (spread > 0 ? ` +- ${spread.toFixed(2)}` : '') +
        (v.marker !== undefined ? ` (${opts.markerLabel ?? 'marker'} ${v.marker.toFixed(2)})` : '');
      parts.push(
        `<rect class="bar" data-group="${esc(g.name)}" data-series="${esc(s.name)}" x="${n1(x + 1)}" y="${n1(Math.min(y, base))}" width="${n1(barW - 2)}" height="${n1(Math.abs(base - y))}" fill="${c}"><title>${esc(tip)}</title></rect>`,
      );
      const mid = x + barW / 2;
      if (spread > 0) {
        const y0 = n1(sy(v.value - spread));
        const y1 = n1(sy(v.value + spread));
        const cap = Math.min(5, barW / 3);
        parts.push(
          `<path class="whisker" d="M${n1(mid)},${y0} V${y1} M${n1(mid - cap)},${y0} H${n1(mid + cap)} M${n1(mid - cap)},${y1} H${n1(mid + cap)}" stroke="#333" fill="none"/>`,
        );
      }
      if (v.marker !== undefined && Number.isFinite(v.marker)) {
        const my = n1(sy(v.marker));
        parts.push(
          `<line class="marker" x1="${n1(x + 1)}" x2="${n1(x + barW - 1)}" y1="${my}" y2="${my}" stroke="#000" stroke-width="2.5"/>`,
        );
      }
    });
    if (g.reference !== undefined && Number.isFinite(g.reference)) {
      const ry = n1(sy(g.reference));
      parts.push(
        `<line class="reference" x1="${n1(gx + 4)}" x2="${n1(gx + groupW - 4)}" y1="${ry}" y2="${ry}" stroke="#c00" stroke-dasharray="4 3" stroke-width="1.5"><title>${esc(`${opts.referenceLabel ?? 'reference'} ${g.reference.toFixed(2)}`)}</title></line>`,
      );
    }
  });
  const cy = box.y + box.h / 2;
  parts.push(
    `<text x="${box.x - 44}" y="${cy}" transform="rotate(-90 ${box.x - 44} ${cy})" text-anchor="middle">${esc(opts.yLabel)}</text>`,
  );
  if (opts.xLabel) {
    parts.push(
      `<text x="${box.x + box.w / 2}" y="${height - 10}" text-anchor="middle">${esc(opts.xLabel)}</text>`,
    );
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
