/**
 * The part of kustomize the manifests in k8s/ use, so the tests render the overlays without kubectl: resources
 * (files and folders), namespace, nameSuffix (with the references to renamed objects), labels (with selectors and
 * pod templates), images, replicas, config map and secret generators (no name hash), strategic merge patches
 * (lists of named items merged by name), JSON 6902 patches (add, replace, remove) on a target, replacements (dotted
 * field paths, with delimiter/index) and configurations (nameReference and label field specs for custom kinds).
 * The transformers run in kustomize's order: patches, namespace, suffix, labels, images, replicas, replacements,
 * then references are renamed. Anything else in a kustomization.yaml is an error, so a manifest change that needs
 * more of kustomize fails loudly here; the tests compare the result with `kubectl kustomize` where it exists.
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
  'nameSuffix',
  'labels',
  'configurations',
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

/** A kustomize field spec: a slash path that steps into every item of a list it meets. */
interface FieldSpec {
  kind?: string;
  path: string;
  create?: boolean;
}

/** Where kustomize's built-in config puts labels when `includeSelectors` is on, for the kinds in k8s/. */
const SELECTOR_LABEL_SPECS: FieldSpec[] = [
  { path: 'metadata/labels', create: true },
  { kind: 'Service', path: 'spec/selector', create: true },
  { kind: 'StatefulSet', path: 'spec/selector/matchLabels', create: true },
  { kind: 'StatefulSet', path: 'spec/template/metadata/labels', create: true },
  { kind: 'StatefulSet', path: 'spec/volumeClaimTemplates/metadata/labels', create: true },
  { kind: 'Job', path: 'spec/template/metadata/labels', create: true },
  { kind: 'NetworkPolicy', path: 'spec/podSelector/matchLabels', create: false },
  { kind: 'NetworkPolicy', path: 'spec/ingress/from/podSelector/matchLabels', create: false },
  { kind: 'NetworkPolicy', path: 'spec/egress/to/podSelector/matchLabels', create: false },
  { kind: 'PodDisruptionBudget', path: 'spec/selector/matchLabels', create: false },
];
/** Built-in name references for the kinds in k8s/ (referenced kind -> where). */
const NAME_REFERENCES: { kind: string; fieldSpecs: FieldSpec[] }[] = [
  { kind: 'Service', fieldSpecs: [{ kind: 'StatefulSet', path: 'spec/serviceName' }] },
  {
    kind: 'Secret',
    fieldSpecs: [
      { kind: 'StatefulSet', path: 'spec/template/spec/containers/env/valueFrom/secretKeyRef/name' },
    ],
  },
];

/** Calls fn(parent, key) for every place `spec` reaches in obj (creating maps on the way where spec.create). */
function eachField(obj: K8sObject, spec: FieldSpec, fn: (parent: K8sObject, key: string) => void): void {
  if (spec.kind && obj.kind !== spec.kind) return;
  const walk = (cur: unknown, segs: string[]): void => {
    if (Array.isArray(cur)) {
      for (const x of cur) walk(x, segs);
      return;
    }
    if (!isObj(cur)) return;
    const [head, ...rest] = segs;
    if (rest.length === 0) {
      if (head! in cur || spec.create) fn(cur, head!);
      return;
    }
    if (!(head! in cur)) {
      if (!spec.create) return;
      cur[head!] = {};
    }
    walk(cur[head!], rest);
  };
  walk(obj, spec.path.split('/'));
}

/** RFC 6902 add/replace/remove with JSON pointers, as kustomize applies a patch file that is a list of ops. */
function jsonPatch(obj: K8sObject, ops: K8sObject[], where: string): void {
  for (const op of ops) {
    const segs = (op.path as string)
      .split('/')
      .slice(1)
      .map((x) => x.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = segs.pop()!;
    let parent: unknown = obj;
    for (const s of segs) parent = Array.isArray(parent) ? parent[Number(s)] : (parent as K8sObject)?.[s];
    if (parent === undefined || parent === null) throw new Error(`${where}: ${op.op} ${op.path}: no parent`);
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!(i >= 0 && i <= parent.length)) throw new Error(`${where}: ${op.path}: index out of range`);
      if (op.op === 'add') parent.splice(i, 0, structuredClone(op.value));
      else if (op.op === 'replace' && i < parent.length) parent[i] = structuredClone(op.value);
      else if (op.op === 'remove' && i < parent.length) parent.splice(i, 1);
      else throw new Error(`${where}: ${op.op} ${op.path} is not supported by kustomize-lite`);
    } else {
      const p = parent as K8sObject;
      if ((op.op === 'replace' || op.op === 'remove') && !(last in p))
        throw new Error(`${where}: ${op.op} ${op.path}: nothing there`);
      if (op.op === 'add' || op.op === 'replace') p[last] = structuredClone(op.value);
      else if (op.op === 'remove') delete p[last];
      else throw new Error(`${where}: ${op.op} is not supported by kustomize-lite`);
    }
  }
}

/** Renders a kustomization folder into its objects, like `kubectl kustomize DIR`. */
export function renderKustomization(dir: string): K8sObject[] {
  return render(dir).objs;
}

interface Rendered {
  objs: K8sObject[];
  /** Label and name-reference field specs from `configurations`, which apply to the kustomizations above too. */
  labelSpecs: FieldSpec[];
  nameReferences: { kind: string; fieldSpecs: FieldSpec[] }[];
  /** Objects renamed so far: `${kind}/${original name}` -> current name. */
  renamed: Map<string, string>;
}

function render(dir: string): Rendered {
  const k = readYamlObjects(path.join(dir, 'kustomization.yaml'))[0]!;
  for (const key of Object.keys(k))
    if (!SUPPORTED.has(key)) throw new Error(`${dir}: '${key}' is not supported by kustomize-lite`);
  let objs: K8sObject[] = [];
  const labelSpecs: FieldSpec[] = [];
  const nameReferences = [...NAME_REFERENCES];
  const renamed = new Map<string, string>();
  for (const r of k.resources ?? []) {
    const p = path.join(dir, r);
    if (fs.statSync(p).isDirectory()) {
      const sub = render(p);
      objs.push(...sub.objs);
      labelSpecs.push(...sub.labelSpecs);
      nameReferences.push(...sub.nameReferences);
      for (const [a, b] of sub.renamed) renamed.set(a, b);
    } else objs.push(...readYamlObjects(p));
  }
  for (const c of k.configurations ?? []) {
    const conf = readYamlObjects(path.join(dir, c))[0]!;
    for (const key of Object.keys(conf))
      if (key !== 'labels' && key !== 'nameReference')
        throw new Error(`${dir}/${c}: '${key}' is not supported by kustomize-lite`);
    labelSpecs.push(...(conf.labels ?? []));
    nameReferences.push(...(conf.nameReference ?? []));
  }
  const options = k.generatorOptions ?? {};
  for (const g of k.configMapGenerator ?? []) objs.push(generator('ConfigMap', dir, g, options));
  for (const g of k.secretGenerator ?? []) objs.push(generator('Secret', dir, g, options));
  for (const p of k.patches ?? []) {
    const docs = readYamlObjects(path.join(dir, p.path));
    if (Array.isArray(docs[0])) {
      const targets = objs.filter((o) => p.target && matches(o, p.target));
      if (targets.length === 0) throw new Error(`${dir}/${p.path}: the JSON patch's target matches nothing`);
      for (const o of targets) jsonPatch(o, docs[0] as K8sObject[], `${dir}/${p.path}`);
      continue;
    }
    for (const patch of docs) {
      const i = objs.findIndex((o) => matches(o, { kind: patch.kind, name: patch.metadata.name }));
      if (i < 0) throw new Error(`${dir}/${p.path}: no ${patch.kind}/${patch.metadata.name} to patch`);
      objs[i] = strategicMerge(objs[i], patch) as K8sObject;
    }
  }
  if (k.namespace) {
    objs = objs.map((o) =>
      CLUSTER_SCOPED.has(o.kind) ? o : { ...o, metadata: { ...o.metadata, namespace: k.namespace } },
    );
  }
  if (k.nameSuffix) {
    for (const o of objs) {
      if (CLUSTER_SCOPED.has(o.kind)) continue;
      const original = [...renamed].find(
        ([key, now]) => key.startsWith(`${o.kind}/`) && now === o.metadata.name,
      );
      const key = original?.[0] ?? `${o.kind}/${o.metadata.name}`;
      o.metadata.name = `${o.metadata.name}${k.nameSuffix}`;
      renamed.set(key, o.metadata.name);
    }
  }
  for (const l of k.labels ?? []) {
    if (!(l.includeSelectors && l.includeTemplates))
      throw new Error(`${dir}: labels without includeSelectors and includeTemplates are not supported`);
    for (const o of objs)
      for (const spec of [...SELECTOR_LABEL_SPECS, ...labelSpecs])
        eachField(o, spec, (parent, key) => {
          if (!isObj(parent[key])) parent[key] = {};
          Object.assign(parent[key], l.pairs);
        });
  }
  for (const img of k.images ?? []) {
    for (const o of objs) {
      const pods = [
        o.spec?.template?.spec,
        ...((o.spec?.replicatedJobs as K8sObject[] | undefined) ?? []).map(
          (r) => r.template?.spec?.template?.spec,
        ),
      ];
      for (const c of pods.flatMap((p) => [...(p?.containers ?? []), ...(p?.initContainers ?? [])])) {
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
  // Replacements select objects by their name before this kustomization's suffix, as kustomize does.
  const originalName = (o: K8sObject) =>
    [...renamed]
      .find(([key, now]) => key.startsWith(`${o.kind}/`) && now === o.metadata?.name)?.[0]
      .split('/')[1] ?? o.metadata?.name;
  const selects = (o: K8sObject, sel: K8sObject) =>
    (!sel.kind || o.kind === sel.kind) &&
    (!sel.name || originalName(o) === sel.name || o.metadata?.name === sel.name);
  for (const rep of k.replacements ?? []) {
    const src = objs.find((o) => selects(o, rep.source));
    if (!src) throw new Error(`${dir}: replacement source ${rep.source.kind}/${rep.source.name} not found`);
    const value = getField(src, rep.source.fieldPath);
    for (const t of rep.targets) {
      const targets = objs.filter((x) => selects(x, t.select));
      if (targets.length === 0) throw new Error(`${dir}: replacement target ${t.select.kind} not found`);
      for (const o of targets)
        for (const fp of t.fieldPaths) {
          if (t.options?.delimiter === undefined) {
            setField(o, fp, value);
            continue;
          }
          const parts = String(getField(o, fp)).split(t.options.delimiter);
          parts[t.options.index ?? 0] = String(value);
          setField(o, fp, parts.join(t.options.delimiter));
        }
    }
  }
  // References to renamed objects follow them.
  for (const ref of nameReferences) {
    for (const o of objs)
      for (const spec of ref.fieldSpecs)
        eachField(o, { ...spec, create: false }, (parent, key) => {
          const now = renamed.get(`${ref.kind}/${parent[key]}`);
          if (typeof parent[key] === 'string' && now) parent[key] = now;
        });
  }
  return { objs, labelSpecs, nameReferences, renamed };
}
