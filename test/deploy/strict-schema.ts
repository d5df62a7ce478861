/**
 * Strict offline validation of Kubernetes objects: every field must exist in the API's schema, as the API server's
 * strict field validation (`kubectl apply --validate=strict`) demands, so a typo such as `imagePullPolicyy` fails
 * here instead of being silently dropped by the server. Types, enums and required fields are checked too.
 *
 * Two sources of schema, both generated from the APIs themselves:
 * - custom resources: the CRD's OpenAPI v3 schema (test/deploy/schemas, vendored with its source and version), read
 *   as the API server reads a structural schema: an object schema that declares `properties` admits no other key
 *   unless it says `x-kubernetes-preserve-unknown-fields`; `additionalProperties` gives the values of a map;
 *   `x-kubernetes-int-or-string` takes either. Embedded `metadata` (an ObjectMeta the CRD leaves open) is checked
 *   against ObjectMeta's fields.
 * - built-in kinds: the TypeScript declarations of the kubernetes-models package (generated from the Kubernetes
 *   OpenAPI document): an interface's properties are the fields, `?` marks the optional ones, string-literal unions
 *   are enums, index signatures are maps. kubernetes-models' own `validate()` checks types but lets unknown fields
 *   through, which is why this exists.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

// biome-ignore lint/suspicious/noExplicitAny: manifests and schemas are free-form JSON
type Json = any;

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const SCHEMA_DIR = path.join(ROOT, 'test', 'deploy', 'schemas');

const isObj = (v: unknown): v is Record<string, Json> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** ObjectMeta fields a manifest may set (the rest are set by the server). */
const OBJECT_META_FIELDS = new Set([
  'name',
  'generateName',
  'namespace',
  'labels',
  'annotations',
  'finalizers',
]);

function checkObjectMeta(value: unknown, where: string, errors: string[]): void {
  if (value === undefined) return;
  if (!isObj(value)) {
    errors.push(`${where}: must be an object`);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (!OBJECT_META_FIELDS.has(k)) errors.push(`${where}.${k}: unknown field`);
    else if ((k === 'labels' || k === 'annotations') && isObj(v)) {
      for (const [lk, lv] of Object.entries(v))
        if (typeof lv !== 'string') errors.push(`${where}.${k}.${lk}: must be a string, got ${typeOf(lv)}`);
    }
  }
}

/** Validates a value against a structural OpenAPI v3 schema (a CRD's); returns the errors, one per field. */
export function checkOpenApi(value: unknown, schema: Json, where = '', errors: string[] = []): string[] {
  if (value === null && schema.nullable) return errors;
  if (schema['x-kubernetes-int-or-string']) {
    if (typeof value !== 'string' && !Number.isInteger(value))
      errors.push(`${where}: must be an integer or a string, got ${typeOf(value)}`);
    else if (typeof value === 'string' && schema.pattern && !new RegExp(schema.pattern, 'u').test(value))
      errors.push(`${where}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
    return errors;
  }
  const t = schema.type as string | undefined;
  if (t === 'object' || (t === undefined && (schema.properties || schema.additionalProperties))) {
    if (!isObj(value)) {
      errors.push(`${where}: must be an object, got ${typeOf(value)}`);
      return errors;
    }
    const props = (schema.properties ?? {}) as Record<string, Json>;
    for (const r of (schema.required ?? []) as string[])
      if (!(r in value)) errors.push(`${where}.${r}: required field missing`);
    for (const [k, v] of Object.entries(value)) {
      const at = `${where}.${k}`;
      if (k in props) {
        // An embedded ObjectMeta that the CRD leaves open (`type: object` only): the API server checks it as
        // ObjectMeta, so do the same.
        if (k === 'metadata' && !props[k].properties && !props[k]['x-kubernetes-preserve-unknown-fields'])
          checkObjectMeta(v, at, errors);
        else checkOpenApi(v, props[k], at, errors);
      } else if (isObj(schema.additionalProperties)) checkOpenApi(v, schema.additionalProperties, at, errors);
      else if (
        schema.properties &&
        !schema['x-kubernetes-preserve-unknown-fields'] &&
        schema.additionalProperties !== true
      )
        errors.push(`${at}: unknown field`);
    }
    return errors;
  }
  if (t === 'array') {
    if (!Array.isArray(value)) {
      errors.push(`${where}: must be an array, got ${typeOf(value)}`);
      return errors;
    }
    if (schema.minItems !== undefined && value.length < schema.minItems)
      errors.push(`${where}: at least ${schema.minItems} item(s)`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems)
      errors.push(`${where}: at most ${schema.maxItems} item(s)`);
    value.forEach((x, i) => {
      if (schema.items) checkOpenApi(x, schema.items, `${where}[${i}]`, errors);
    });
    return errors;
  }
  if (t === 'string' && typeof value !== 'string')
    errors.push(`${where}: must be a string, got ${typeOf(value)}`);
  else if (t === 'integer' && !Number.isInteger(value))
    errors.push(`${where}: must be an integer, got ${JSON.stringify(value)}`);
  else if (t === 'number' && typeof value !== 'number')
    errors.push(`${where}: must be a number, got ${typeOf(value)}`);
  else if (t === 'boolean' && typeof value !== 'boolean')
    errors.push(`${where}: must be a boolean, got ${typeOf(value)}`);
  if (schema.enum && !(schema.enum as unknown[]).includes(value))
    errors.push(`${where}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value))
      errors.push(`${where}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength)
      errors.push(`${where}: longer than ${schema.maxLength}`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum)
      errors.push(`${where}: ${value} is below the minimum ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum)
      errors.push(`${where}: ${value} is above the maximum ${schema.maximum}`);
  }
  return errors;
}

/** A vendored CRD schema: { apiVersion, kind, openAPIV3Schema, source, version }. */
export interface CrdSchema {
  apiVersion: string;
  kind: string;
  source: string;
  version: string;
  openAPIV3Schema: Json;
}

export function loadCrdSchemas(): CrdSchema[] {
  return fs
    .readdirSync(SCHEMA_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, f), 'utf8')) as CrdSchema);
}

/** A type expression of kubernetes-models' declarations. */
type TypeExpr =
  | { t: 'string' | 'number' | 'boolean' | 'any' }
  | { t: 'literal'; value: string }
  | { t: 'union'; of: TypeExpr[] }
  | { t: 'array'; of: TypeExpr }
  | { t: 'map'; of: TypeExpr }
  | { t: 'ref'; name: string; file: string }
  | { t: 'object'; props: Map<string, { optional: boolean; type: TypeExpr }> };

interface DtsFile {
  /** Local name -> file it is imported from. */
  imports: Map<string, string>;
  /** Exported (or aliased) name -> its type. */
  decls: Map<string, TypeExpr | { alias: string }>;
}

const NODE_MODULES = path.join(ROOT, 'node_modules');

function resolveModule(spec: string, from: string): string {
  const base = spec.startsWith('.') ? path.resolve(path.dirname(from), spec) : path.join(NODE_MODULES, spec);
  for (const f of [base.replace(/\.js$/, '.d.ts'), `${base}.d.ts`, path.join(base, 'index.d.ts')])
    if (fs.existsSync(f)) return f;
  // Packages that map subpaths to dist/ (@kubernetes-models/*).
  const m = /^(@[^/]+\/[^/]+|[^@/][^/]*)\/(.+)$/.exec(spec);
  if (m) {
    const dist = path.join(NODE_MODULES, m[1]!, 'dist', `${m[2]}.d.ts`);
    if (fs.existsSync(dist)) return dist;
  }
  throw new Error(`cannot resolve ${spec} from ${from}`);
}

/**
 * The built-in kinds' fields, read from the TypeScript declarations of the kubernetes-models package (generated
 * from the Kubernetes OpenAPI document): `"field"?: Type;` lines of `export interface`, string-literal unions as
 * enums, `{ [key: string]: T }` as maps, `Array<T>`, and named types followed through their imports.
 */
export class BuiltinKinds {
  private readonly files = new Map<string, DtsFile>();

  has(apiVersion: string, kind: string): boolean {
    try {
      this.kindType(apiVersion, kind);
      return true;
    } catch {
      return false;
    }
  }

  /** Every unknown field, wrong type, bad enum value and missing required field of a built-in object. */
  check(obj: Json): string[] {
    const errors: string[] = [];
    this.walk(obj, this.kindType(obj.apiVersion, obj.kind), '', errors);
    return errors;
  }

  /** The same for a part of an object, by the kubernetes-models type it has (e.g. batch/v1 JobTemplateSpec). */
  checkAs(value: unknown, apiVersion: string, typeName: string, where: string): string[] {
    const errors: string[] = [];
    this.walk(value, this.kindType(apiVersion, typeName), where, errors);
    return errors;
  }

  private kindType(apiVersion: string, kind: string): TypeExpr {
    const file = resolveModule(`kubernetes-models/${apiVersion}/${kind}`, ROOT);
    return { t: 'ref', name: `I${kind}`, file };
  }

  private parse(file: string): DtsFile {
    const cached = this.files.get(file);
    if (cached) return cached;
    const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    const imports = new Map<string, string>();
    for (const m of text.matchAll(/^import \{([^}]*)\} from "([^"]+)";/gm))
      for (const n of m[1]!
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)) {
        const [orig, local] = n.split(/\s+as\s+/);
        imports.set(local ?? orig!, `${resolveModule(m[2]!, file)}#${orig}`);
      }
    const decls: DtsFile['decls'] = new Map();
    for (const m of text.matchAll(/^export interface (\w+)(?: extends [\w, ]+)? \{\n([\s\S]*?)^\}/gm))
      decls.set(m[1]!, parseObject(m[2]!, file));
    for (const m of text.matchAll(/^export type (\w+) = ([^;]+);/gm))
      decls.set(m[1]!, parseType(m[2]!, file));
    for (const m of text.matchAll(/^export type \{([^}]*)\};/gm))
      for (const n of m[1]!.split(',')) {
        const [orig, alias] = n.trim().split(/\s+as\s+/);
        if (alias) decls.set(alias, { alias: orig! });
      }
    const parsed = { imports, decls };
    this.files.set(file, parsed);
    return parsed;
  }

  private resolve(ref: { name: string; file: string }): TypeExpr {
    const f = this.parse(ref.file);
    const d = f.decls.get(ref.name);
    if (d && 'alias' in d) return this.resolve({ name: d.alias, file: ref.file });
    if (d) return d.t === 'ref' ? this.resolve(d) : d;
    const imported = f.imports.get(ref.name);
    if (imported) {
      const [file, name] = imported.split('#');
      return this.resolve({ name: name!, file: file! });
    }
    throw new Error(`${ref.file}: type ${ref.name} not found`);
  }

  private walk(value: unknown, type: TypeExpr, where: string, errors: string[]): void {
    if (value === null || value === undefined) return;
    const t = type.t === 'ref' ? this.resolve(type) : type;
    switch (t.t) {
      case 'any':
        return;
      case 'string':
      case 'number':
      case 'boolean':
        if (typeof value !== t.t) errors.push(`${where}: must be a ${t.t}, got ${typeOf(value)}`);
        return;
      case 'literal':
        if (value !== t.value)
          errors.push(`${where}: must be ${JSON.stringify(t.value)}, got ${JSON.stringify(value)}`);
        return;
      case 'union': {
        const members = t.of.map((m) => (m.t === 'ref' ? this.resolve(m) : m));
        if (members.every((m) => m.t === 'literal')) {
          const allowed = members.map((m) => (m as { value: string }).value);
          if (!allowed.includes(value as string))
            errors.push(`${where}: ${JSON.stringify(value)} is not one of ${JSON.stringify(allowed)}`);
          return;
        }
        // IntOrString, Quantity: the value must fit one member.
        const fits = members.map((m) => {
          const e: string[] = [];
          this.walk(value, m, where, e);
          return e;
        });
        if (!fits.some((e) => e.length === 0))
          errors.push(...fits.reduce((a, b) => (b.length < a.length ? b : a)));
        return;
      }
      case 'array':
        if (!Array.isArray(value)) errors.push(`${where}: must be an array, got ${typeOf(value)}`);
        else
          value.forEach((x, i) => {
            this.walk(x, t.of, `${where}[${i}]`, errors);
          });
        return;
      case 'map':
        if (!isObj(value)) errors.push(`${where}: must be an object, got ${typeOf(value)}`);
        else for (const [k, v] of Object.entries(value)) this.walk(v, t.of, `${where}.${k}`, errors);
        return;
      case 'object': {
        if (!isObj(value)) {
          errors.push(`${where}: must be an object, got ${typeOf(value)}`);
          return;
        }
        for (const [name, p] of t.props)
          if (!p.optional && !(name in value)) errors.push(`${where}.${name}: required field missing`);
        for (const [k, v] of Object.entries(value)) {
          const p = t.props.get(k);
          if (p) this.walk(v, p.type, `${where}.${k}`, errors);
          else errors.push(`${where}.${k}: unknown field`);
        }
      }
    }
  }
}

/** The properties of an interface body: `"name"?: Type;`, a type possibly spanning lines (`{ [key: string]: T; }`). */
function parseObject(body: string, file: string): TypeExpr {
  const props = new Map<string, { optional: boolean; type: TypeExpr }>();
  let i = 0;
  for (;;) {
    const m = /"([^"]+)"(\??): /y;
    const start = body.indexOf('"', i);
    if (start < 0) break;
    m.lastIndex = start;
    const hit = m.exec(body);
    if (!hit) throw new Error(`${file}: cannot read the interface near '${body.slice(start, start + 60)}'`);
    let j = m.lastIndex;
    let depth = 0;
    for (; j < body.length; j++) {
      const ch = body[j];
      if (ch === '{' || ch === '<' || ch === '(') depth++;
      else if (ch === '}' || ch === '>' || ch === ')') depth--;
      else if (ch === '"') j = body.indexOf('"', j + 1);
      else if (ch === ';' && depth === 0) break;
    }
    props.set(hit[1]!, { optional: hit[2] === '?', type: parseType(body.slice(m.lastIndex, j), file) });
    i = j + 1;
  }
  return { t: 'object', props };
}

function splitTop(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '{' || ch === '<' || ch === '(') depth++;
    else if (ch === '}' || ch === '>' || ch === ')') depth--;
    else if (ch === '"') i = s.indexOf('"', i + 1);
    else if (ch === sep && depth === 0) {
      out.push(s.slice(last, i));
      last = i + 1;
    }
  }
  out.push(s.slice(last));
  return out.map((x) => x.trim());
}

function parseType(src: string, file: string): TypeExpr {
  const s = src.trim();
  const parts = splitTop(s, '|');
  if (parts.length > 1) return { t: 'union', of: parts.map((p) => parseType(p, file)) };
  if (s === 'string' || s === 'number' || s === 'boolean') return { t: s };
  if (s === 'any' || s === 'unknown' || s === 'object') return { t: 'any' };
  let m = /^"([^"]*)"$/.exec(s);
  if (m) return { t: 'literal', value: m[1]! };
  m = /^Array<([\s\S]+)>$/.exec(s);
  if (m) return { t: 'array', of: parseType(m[1]!, file) };
  m = /^\{\s*\[key: string\]: ([\s\S]+?);?\s*\}$/.exec(s);
  if (m) return { t: 'map', of: parseType(m[1]!, file) };
  // An inline object type: `{ "field"?: T; ... }`.
  m = /^\{([\s\S]*)\}$/.exec(s);
  if (m && /^\s*"/.test(m[1]!)) return parseObject(m[1]!, file);
  m = /^(\w+)\[\]$/.exec(s);
  if (m) return { t: 'array', of: parseType(m[1]!, file) };
  if (/^\w+$/.test(s)) return { t: 'ref', name: s, file };
  throw new Error(`${file}: type '${s}' is not understood`);
}

/**
 * The sub-schema at a path of a CRD schema: `properties` by name, `[]` for a list's items; e.g. the Kubernetes
 * PodTemplateSpec a JobSet embeds.
 */
export function subSchema(schema: Json, at: string): Json {
  let s = schema;
  for (const seg of at.split('.')) {
    s = seg === '[]' ? s.items : s.properties?.[seg];
    if (!s) throw new Error(`no schema at ${at} (${seg})`);
  }
  return s;
}
