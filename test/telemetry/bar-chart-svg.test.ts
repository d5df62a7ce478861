/**
 * The grouped bar chart (src/telemetry/bar-chart-svg.ts): well-formed XML (read back by Python's XML parser), one
 * bar per series x group at the right height order, whiskers, markers and reference lines where asked, labels
 * present and escaped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { type BarChartData, barChartSvg } from '../../src/telemetry/bar-chart-svg.js';

/** The SVG's elements as Python's xml.etree reads them: tag (namespace dropped), attributes and text. */
function parseXml(svg: string): { tag: string; attrib: Record<string, string>; text: string }[] | undefined {
  const code = `import sys, json, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
print(json.dumps([{"tag": e.tag.split("}")[-1], "attrib": e.attrib, "text": "".join(e.itertext())} for e in root.iter()]))`;
  const r = spawnSync('python3', ['-c', code], { input: svg, encoding: 'utf8' });
  if (r.error) return undefined; // no python3 here
  assert.equal(r.status, 0, `python3 could not parse the SVG: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const DATA: BarChartData = {
  groups: [
    { name: 'task-a', reference: 50 },
    { name: 'task <b> & "c"', reference: 4.8 },
  ],
  series: [
    {
      name: 'PT',
      values: [
        { value: 60, spread: 5, marker: 40 },
        { value: 10, spread: null, marker: 2 },
      ],
    },
    { name: 'ATTEMPT-m', values: [{ value: 70, spread: 2 }, undefined] },
    { name: 'SPT', values: [{ value: 30 }, { value: 0, spread: 1 }] },
  ],
};

test('barChartSvg: well-formed, one bar per series and group, labels present', (t) => {
  const svg = barChartSvg(DATA, {
    title: 'scores & more',
    subtitle: 'line one\nline two',
    yLabel: 'test accuracy (%)',
    xLabel: 'target task',
    spreadLabel: '± sd',
    markerLabel: 'untrained',
    referenceLabel: 'chance',
  });
  const els = parseXml(svg);
  if (!els) return t.skip('python3 is not installed: cannot parse the SVG with a real XML parser');
  assert.equal(els[0]!.tag, 'svg');
  const bars = els.filter((e) => e.tag === 'rect' && e.attrib.class === 'bar');
  const key = (e: (typeof bars)[number]) => `${e.attrib['data-series']}|${e.attrib['data-group']}`;
  assert.deepEqual(bars.map(key).sort(), [
    'ATTEMPT-m|task-a',
    'PT|task <b> & "c"',
    'PT|task-a',
    'SPT|task <b> & "c"',
    'SPT|task-a',
  ]);
  // Heights follow the values within a group (same scale for every bar).
  const h = (s: string, g: string) => Number(bars.find((b) => key(b) === `${s}|${g}`)!.attrib.height);
  assert.ok(h('ATTEMPT-m', 'task-a') > h('PT', 'task-a'));
  assert.ok(h('PT', 'task-a') > h('SPT', 'task-a'));
  assert.ok(
    Math.abs(h('PT', 'task-a') / h('SPT', 'task-a') - 2) < 0.05,
    'bar heights proportional to values',
  );
  assert.equal(h('SPT', 'task <b> & "c"'), 0);
  // A whisker where a spread is given and > 0 (PT/a, ATTEMPT-m/a, SPT/b), markers where given, one chance line
  // per group.
  assert.equal(els.filter((e) => e.attrib.class === 'whisker').length, 3);
  assert.equal(els.filter((e) => e.attrib.class === 'marker').length, 2);
  assert.equal(els.filter((e) => e.attrib.class === 'reference').length, 2);
  const texts = els.filter((e) => e.tag === 'text').map((e) => e.text);
  for (const label of [
    'scores & more',
    'line one',
    'line two',
    'test accuracy (%)',
    'target task',
    'PT',
    'ATTEMPT-m',
    'SPT',
    '± sd',
    'untrained',
    'chance',
    'task-a',
    'task <b> & "c"',
  ]) {
    assert.ok(texts.includes(label), `label '${label}' in ${JSON.stringify(texts)}`);
  }
});

test('barChartSvg: refuses an empty chart and a series of the wrong length', () => {
  assert.throws(
    () => barChartSvg({ groups: [], series: DATA.series }, { title: 't', yLabel: 'y' }),
    /no groups/,
  );
  assert.throws(
    () =>
      barChartSvg(
        { groups: DATA.groups, series: [{ name: 'x', values: [{ value: 1 }] }] },
        { title: 't', yLabel: 'y' },
      ),
    /'x' has 1 values for 2 groups/,
  );
});
