#!/usr/bin/env node
// Writes the OpenAPI v3 schema of one served version of a CustomResourceDefinition as JSON, descriptions removed
// (nothing else changed), with where it came from: the data test/deploy/strict-schema.ts validates manifests with.
//   node scripts/vendor-crd-schema.mjs CRD.yaml VERSION SOURCE_URL RELEASE > test/deploy/schemas/GROUP_VERSION_KIND.json
// e.g. from a checkout of kubernetes-sigs/jobset at v0.12.0:
//   node scripts/vendor-crd-schema.mjs config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml v1alpha2 \
//     https://github.com/kubernetes-sigs/jobset/blob/v0.12.0/config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml \
//     'JobSet v0.12.0 (commit f22e565ac3cc3265c7c45ef67ecffdc689af5d77)'
import * as fs from 'node:fs';
import { parse } from 'yaml';

const [file, version, source, release] = process.argv.slice(2);
if (!(file && version && source && release)) {
  console.error('usage: vendor-crd-schema.mjs CRD.yaml VERSION SOURCE_URL RELEASE');
  process.exit(2);
}
const crd = parse(fs.readFileSync(file, 'utf8'));
const v = crd.spec.versions.find((x) => x.name === version);
if (!v) throw new Error(`${file}: no version ${version}`);
const strip = (o) =>
  Array.isArray(o)
    ? o.map(strip)
    : o && typeof o === 'object'
      ? Object.fromEntries(
          Object.entries(o)
            .filter(([k]) => k !== 'description')
            .map(([k, x]) => [k, strip(x)]),
        )
      : o;
const out = {
  source,
  version: `${release}, CRD ${crd.metadata.name}, version ${version}`,
  note: 'spec.versions[name=VERSION].schema.openAPIV3Schema of the CRD with descriptions removed; nothing else changed',
  apiVersion: `${crd.spec.group}/${version}`,
  kind: crd.spec.names.kind,
  openAPIV3Schema: strip(v.schema.openAPIV3Schema),
};
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
