/**
 * The part of kustomize the manifests in k8s/ use, so the tests render the overlays without kubectl: resources
 * (files and folders), namespace, images, replicas, config map and secret generators (no name hash), strategic
 * merge patches (lists of named items merged by name) and replacements (dotted field paths). Anything else in a
 * kustomization.yaml is an error, so a manifest change that needs more of kustomize fails loudly here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form YAML
export type K8sObject = Record<string, any>;

const SUPPORTED = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'images',
  'replicas',
  'replacements',
  'patches',
  'configMapGenerator',
  'secretGenerator',
  'generatorOptions',
]);
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'PersistentVolume',
  'StorageClass',
]);

export function readYamlObjects(file: string): K8sObject[] {
  return parseAllDocuments(fs.readFileSync(file, 'utf8'))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

function isObj(v: unknown): v is K8sObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Strategic merge as kustomize does it for these manifests: maps recursively, lists of named maps by name. */
export function strategicMerge(base: unknown, patch: unknown): unknown {
  if (isObj(base) && isObj(patch)) {
    const out: K8sObject = { ...base };
    for (const [k, v] of Object.entries(patch)) out[k] = k in base ? strategicMerge(base[k], v) : v;
    return out;
  }
  if (
    Array.isArray(base) &&
    Array.isArray(patch) &&
    [...base, ...patch].every((x) => isObj(x) && typeof x.name === 'string')
  ) {
    const merged = base.map((b) => {
      const p = patch.find((x) => x.name === b.name);
      return p ? strategicMerge(b, p) : b;
    });
    // Like kustomize: items the patch adds come first, in the patch's order.
    return [...patch.filter((p) => !base.some((b) => b.name === p.name)), ...merged];
  }
  return patch;
}

function generator(kind: 'ConfigMap' | 'Secret', dir: string, g: K8sObject, options: K8sObject): K8sObject {
  const data: Record<string, string> = {};
  for (const lit of g.literals ?? []) {
    const i = (lit as string).indexOf('=');
    data[lit.slice(0, i)] = lit.slice(i + 1);
  }
  for (const f of g.files ?? []) {
    const [key, file] = (f as string).includes('=') ? (f as string).split('=') : [path.basename(f), f];
    const text = fs.readFileSync(path.join(dir, file!), 'utf8');
    data[key!] = kind === 'Secret' ? Buffer.from(text).toString('base64') : text;
  }
  if (!(options.disableNameSuffixHash || g.options?.disableNameSuffixHash)) {
    throw new Error(
      `${dir}: generator ${g.name} needs disableNameSuffixHash (name hashes are not implemented here)`,
    );
  }
  const labels = { ...(options.labels ?? {}), ...(g.options?.labels ?? {}) };
  return {
    apiVersion: 'v1',
    kind,
    metadata: { name: g.name, ...(Object.keys(labels).length ? { labels } : {}) },
    ...(kind === 'Secret' ? { type: g.type ?? 'Opaque' } : {}),
    data,
  };
}

function segments(fieldPath: string): string[] {
  return fieldPath.match(/\[[^\]]*\]|[^.[\]]+/g) ?? [];
}

function getField(obj: K8sObject, fieldPath: string): unknown {
  let cur: unknown = obj;
  for (const s of segments(fieldPath)) {
    if (s.startsWith('[')) {
      const [k, v] = s.slice(1, -1).split('=');
      cur = (cur as K8sObject[]).find((x) => x[k!] === v);
    } else cur = (cur as K8sObject)?.[s];
  }
  return cur;
}

function setField(obj: K8sObject, fieldPath: string, value: unknown): void {
  const segs = segments(fieldPath);
  const last = segs.pop()!;
  const parent = getField(obj, segs.join('.').replace(/\.\[/g, '['));
  if (!isObj(parent))
    throw new Error(`replacement target ${fieldPath} does not exist in ${obj.kind}/${obj.metadata?.name}`);
  // Kustomize keeps the target's type: a number copied into a string field stays a string.
  parent[last] = typeof parent[last] === 'string' ? String(value) : value;
}

const matches = (o: K8sObject, sel: K8sObject) =>
  (!sel.kind || o.kind === sel.kind) && (!sel.name || o.metadata?.name === sel.name);

/** Renders a kustomization folder into its objects, like `kubectl kustomize DIR`. */
export function renderKustomization(dir: string): K8sObject[] {
  const k = readYamlObjects(path.join(dir, 'kustomization.yaml'))[0]!;
  for (const key of Object.keys(k))
    if (!SUPPORTED.has(key)) throw new Error(`${dir}: '${key}' is not supported by kustomize-lite`);
  let objs: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const p = path.join(dir, r);
    objs.push(...(fs.statSync(p).isDirectory() ? renderKustomization(p) : readYamlObjects(p)));
  }
  const options = k.generatorOptions ?? {};
  for (const g of k.configMapGenerator ?? []) objs.push(generator('ConfigMap', dir, g, options));
  for (const g of k.secretGenerator ?? []) objs.push(generator('Secret', dir, g, options));
  for (const p of k.patches ?? []) {
    for (const patch of readYamlObjects(path.join(dir, p.path))) {
      const i = objs.findIndex((o) => matches(o, { kind: patch.kind, name: patch.metadata.name }));
      if (i < 0) throw new Error(`${dir}/${p.path}: no ${patch.kind}/${patch.metadata.name} to patch`);
      objs[i] = strategicMerge(objs[i], patch) as K8sObject;
    }
  }
  for (const img of k.images ?? []) {
    for (const o of objs) {
      for (const c of [
        ...(o.spec?.template?.spec?.containers ?? []),
        ...(o.spec?.template?.spec?.initContainers ?? []),
      ]) {
        const [name, tag] = (c.image as string).split(':');
        if (name === img.name) c.image = `${img.newName ?? name}:${img.newTag ?? tag ?? 'latest'}`;
      }
    }
  }
  for (const r of k.replicas ?? []) {
    const o = objs.find((x) => x.metadata?.name === r.name && x.spec && 'replicas' in x.spec);
    if (!o) throw new Error(`${dir}: replicas for ${r.name}, which is not here`);
    o.spec.replicas = r.count;
  }
  if (k.namespace) {
    objs = objs.map((o) =>
      CLUSTER_SCOPED.has(o.kind) ? o : { ...o, metadata: { ...o.metadata, namespace: k.namespace } },
    );
  }
  for (const rep of k.replacements ?? []) {
    const src = objs.find((o) => matches(o, rep.source));
    if (!src) throw new Error(`${dir}: replacement source ${rep.source.kind}/${rep.source.name} not found`);
    const value = getField(src, rep.source.fieldPath);
    for (const t of rep.targets) {
      for (const o of objs.filter((x) => matches(x, t.select)))
        for (const fp of t.fieldPaths) setField(o, fp, value);
    }
  }
  return objs;
}
