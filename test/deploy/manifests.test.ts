/**
 * Kubernetes manifests, images and the compose stack, checked offline: both overlays and k8s/monitoring render
 * (kustomize-lite, and the same result as `kubectl kustomize` where kubectl exists); every object validates
 * strictly, unknown fields refused: built-in kinds against the Kubernetes types (kubernetes-models' validate() for
 * types and formats, its type declarations for the field names), the JobSet, Kueue and Prometheus Operator objects
 * against their CRDs' schemas (test/deploy/schemas); the JobSet's semantics (success and failure policies, DNS
 * hostnames, min < max workers, names derived from the job) are checked one by one; and every port, env name,
 * command and flag the manifests use agrees with the code.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { BACKEND_ENV, nativeRuntimeEnv, parseBackendRequest } from '../../src/backend/index.js';
import { commands } from '../../src/cli/commands/index.js';
import { runCli } from '../../src/cli/main.js';
import { MALLOC_ENV } from '../../src/cli/worker-env.js';
import { parseJobConfig } from '../../src/config/job-config.js';
import { RUNTIME_ENV } from '../../src/config/runtime-env.js';
import { NATS_ENV } from '../../src/control/nats-connect.js';
import { DEFAULT_CLUSTER_METRICS_PORT, LOG_ENV, METRICS_ENV } from '../../src/telemetry/index.js';
import { type K8sObject, readYamlObjects, renderKustomization } from './kustomize-lite.js';
import { BuiltinKinds, type CrdSchema, checkOpenApi, loadCrdSchemas } from './strict-schema.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const KNOWN_ENV = new Set<string>([
  ...Object.values(RUNTIME_ENV),
  ...Object.values(NATS_ENV),
  ...Object.values(METRICS_ENV),
  ...Object.values(LOG_ENV),
  BACKEND_ENV,
  'PROMPTMESH_PROGRESS',
]);
/** Read in the worker process by TensorFlow, the CUDA libraries and glibc rather than by promptmesh's own code. */
const NATIVE_ENV = new Set<string>([
  ...Object.keys(nativeRuntimeEnv({})),
  'PROMPTMESH_ALLOW_TF32',
  'TF_NUM_INTRAOP_THREADS',
  'TF_NUM_INTEROP_THREADS',
  ...Object.keys(MALLOC_ENV),
]);
const COLLECTIVE_PORT = 7070;

function find(objs: K8sObject[], kind: string, name: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `${kind}/${name} is missing`);
  return o;
}

interface PodTemplate {
  /** `StatefulSet/nats-demo` or `JobSet/promptmesh-demo/workers`. */
  owner: string;
  /** The replicated job (JobSet) or undefined. */
  role: string | undefined;
  metadata: K8sObject;
  pod: K8sObject;
}

/** Every pod template: StatefulSets' and each replicated job's of a JobSet. */
function podTemplates(objs: K8sObject[]): PodTemplate[] {
  return objs.flatMap((o): PodTemplate[] => {
    if (o.kind === 'JobSet')
      return (o.spec.replicatedJobs as K8sObject[]).map((rj) => ({
        owner: `JobSet/${o.metadata.name}/${rj.name}`,
        role: rj.name,
        metadata: rj.template.spec.template.metadata,
        pod: rj.template.spec.template.spec,
      }));
    if (o.spec?.template?.spec)
      return [
        {
          owner: `${o.kind}/${o.metadata.name}`,
          role: undefined,
          metadata: o.spec.template.metadata,
          pod: o.spec.template.spec,
        },
      ];
    return [];
  });
}

function containers(
  objs: K8sObject[],
): { owner: string; role: string | undefined; pod: K8sObject; c: K8sObject }[] {
  return podTemplates(objs).flatMap(({ owner, role, pod }) =>
    (pod.containers as K8sObject[]).map((c) => ({ owner, role, pod, c })),
  );
}

function jobSet(objs: K8sObject[]): K8sObject {
  const js = objs.filter((o) => o.kind === 'JobSet');
  assert.equal(js.length, 1, 'one JobSet per job');
  return js[0]!;
}

function replicatedJob(objs: K8sObject[], name: string): K8sObject {
  const rj = (jobSet(objs).spec.replicatedJobs as K8sObject[]).find((r) => r.name === name);
  assert.ok(rj, `replicated job ${name}`);
  return rj;
}

function worker(objs: K8sObject[]): { c: K8sObject; pod: K8sObject } {
  const w = containers(objs).find((x) => x.role === 'workers');
  assert.ok(w, 'the workers');
  return w;
}

const envMap = (c: K8sObject) =>
  new Map<string, K8sObject>(((c.env ?? []) as K8sObject[]).map((e) => [e.name, e]));
const JOB_LABEL = 'promptmesh.dev/job';
const OVERLAYS = ['cpu-dev', 'gpu'] as const;

/** A command's flags by name, to check the args the manifests pass. */
function commandFlags(name: string): Set<string> {
  const cmd = commands.find((c) => c.path.join(' ') === name);
  assert.ok(cmd, `the manifests run 'promptmesh ${name}', which is not a command`);
  return new Set(cmd.options.map((o) => `--${o.name}`));
}

function checkArgs(where: string, args: string[]): void {
  const flags = commandFlags(args[0]!);
  for (const a of args.slice(1))
    if (a.startsWith('--')) assert.ok(flags.has(a), `${where}: '${args[0]} ${a}' is not an option`);
}

interface DockerStage {
  from: string;
  name: string | undefined;
  text: string;
}

/** A Dockerfile's stages in order, each with its base, its name and its lines. */
function dockerStages(text: string): DockerStage[] {
  return text
    .split(/^(?=FROM )/m)
    .slice(1)
    .map((chunk) => {
      const m = /^FROM (\S+)(?: AS (\S+))?/.exec(chunk)!;
      return { from: m[1]!, name: m[2], text: chunk };
    });
}

/** The KEY=value pairs a stage's ENV instructions set (values without spaces, as ours are). */
function dockerEnv(stage: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of stage.replace(/\\\n\s*/g, ' ').split('\n')) {
    if (!line.startsWith('ENV ')) continue;
    for (const kv of line.slice(4).trim().split(/\s+/)) {
      const i = kv.indexOf('=');
      assert.ok(i > 0, `ENV ${kv}: use KEY=value`);
      env.set(kv.slice(0, i), kv.slice(i + 1));
    }
  }
  return env;
}

let tmp: string;
const rendered = new Map<string, K8sObject[]>();
let monitoring: K8sObject[];
let kueue: K8sObject[];
let builtins: BuiltinKinds;
let crds: CrdSchema[];

/** Every error of an object against its schema: its CRD's, or the Kubernetes types (and their own validate()). */
async function strictErrors(o: K8sObject): Promise<string[]> {
  const crd = crds.find((c) => c.apiVersion === o.apiVersion && c.kind === o.kind);
  if (crd) {
    const errors = checkOpenApi(o, crd.openAPIV3Schema, `${o.kind}/${o.metadata?.name}`);
    // The Job templates a JobSet embeds, also against the Kubernetes types (enums the CRD schema leaves open).
    if (o.kind === 'JobSet')
      (o.spec.replicatedJobs as K8sObject[]).forEach((rj, i) => {
        errors.push(
          ...builtins.checkAs(
            rj.template,
            'batch/v1',
            'JobTemplateSpec',
            `JobSet.spec.replicatedJobs[${i}].template`,
          ),
        );
      });
    return errors;
  }
  assert.ok(
    builtins.has(o.apiVersion, o.kind),
    `no schema for ${o.apiVersion} ${o.kind}: vendor its CRD (test/deploy/schemas)`,
  );
  const mod = (await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<
    string,
    new (
      x: K8sObject,
    ) => { validate(): void }
  >;
  const errors = builtins.check(o);
  try {
    new mod[o.kind]!(o).validate();
  } catch (e) {
    errors.push((e as Error).message);
  }
  return errors;
}

before(() => {
  // The gpu overlay generates its TLS Secret from files the operator creates (never committed): use stand-ins.
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  fs.cpSync(path.join(ROOT, 'k8s'), path.join(tmp, 'k8s'), { recursive: true });
  const tls = path.join(tmp, 'k8s', 'overlays', 'gpu', 'tls');
  fs.mkdirSync(tls, { recursive: true });
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) fs.writeFileSync(path.join(tls, f), `stand-in ${f}\n`);
  for (const overlay of OVERLAYS)
    rendered.set(overlay, renderKustomization(path.join(tmp, 'k8s', 'overlays', overlay)));
  monitoring = renderKustomization(path.join(tmp, 'k8s', 'monitoring'));
  kueue = readYamlObjects(path.join(ROOT, 'k8s', 'kueue', 'queues.yaml'));
  builtins = new BuiltinKinds();
  crds = loadCrdSchemas();
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('k8s overlays', () => {
  test('kubectl kustomize renders the same objects', {
    skip: spawnSync('kubectl', ['version', '--client']).error
      ? 'skipped: kubectl not installed (kustomize-lite rendering is still checked)'
      : false,
  }, () => {
    const dirs: [string, K8sObject[]][] = [
      ...[...rendered].map(([o, objs]): [string, K8sObject[]] => [path.join('overlays', o), objs]),
      ['monitoring', monitoring],
    ];
    for (const [dir, objs] of dirs) {
      const r = spawnSync('kubectl', ['kustomize', path.join(tmp, 'k8s', dir)], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const theirs = parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject);
      const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
      assert.deepEqual(theirs.map(key).sort(), objs.map(key).sort(), dir);
      for (const o of theirs)
        assert.deepEqual(
          objs.find((x) => key(x) === key(o)),
          o,
          `${dir}: ${key(o)}`,
        );
    }
  });

  test('every object validates strictly against its API schema (unknown fields refused)', async () => {
    const all = [...[...rendered.values()].flat(), ...monitoring, ...kueue];
    const kinds = new Set<string>();
    for (const o of all) {
      kinds.add(`${o.apiVersion} ${o.kind}`);
      assert.deepEqual(await strictErrors(o), [], `${o.kind}/${o.metadata.name}`);
    }
    for (const k of [
      'jobset.x-k8s.io/v1alpha2 JobSet',
      'apps/v1 StatefulSet',
      'v1 Service',
      'v1 PersistentVolumeClaim',
      'policy/v1 PodDisruptionBudget',
      'networking.k8s.io/v1 NetworkPolicy',
      'monitoring.coreos.com/v1 PodMonitor',
      'monitoring.coreos.com/v1 PrometheusRule',
      'kueue.x-k8s.io/v1beta2 LocalQueue',
      'kueue.x-k8s.io/v1beta2 ClusterQueue',
    ])
      assert.ok(kinds.has(k), `${k} was validated`);
  });

  test('a typo is refused: imagePullPolicyy in the JobSet and in the NATS StatefulSet, operatorr in a policy', async () => {
    const objs = rendered.get('gpu')!;
    const js = structuredClone(jobSet(objs));
    js.spec.replicatedJobs[1].template.spec.template.spec.containers[0].imagePullPolicyy = 'Always';
    assert.deepEqual(await strictErrors(js), [
      `JobSet/${js.metadata.name}.spec.replicatedJobs[1].template.spec.template.spec.containers[0].imagePullPolicyy: unknown field`,
      'JobSet.spec.replicatedJobs[1].template.spec.template.spec.containers[0].imagePullPolicyy: unknown field',
    ]);
    const js2 = structuredClone(jobSet(objs));
    js2.spec.successPolicy.operatorr = 'All';
    assert.deepEqual(await strictErrors(js2), [
      `JobSet/${js2.metadata.name}.spec.successPolicy.operatorr: unknown field`,
    ]);
    const sts = structuredClone(objs.find((o) => o.kind === 'StatefulSet')!);
    sts.spec.template.spec.containers[0].imagePullPolicyy = 'Always';
    // kubernetes-models alone lets it through (the reason for the strict check)...
    const { StatefulSet } = await import('kubernetes-models/apps/v1/StatefulSet');
    assert.doesNotThrow(() => new StatefulSet(sts).validate());
    // ...the strict check does not.
    assert.deepEqual(await strictErrors(sts), [
      '.spec.template.spec.containers[0].imagePullPolicyy: unknown field',
    ]);
    const rule = structuredClone(find(monitoring, 'PrometheusRule', 'promptmesh'));
    rule.spec.groups[0].rules[0].labelz = { severity: 'page' };
    assert.deepEqual(await strictErrors(rule), [
      'PrometheusRule/promptmesh.spec.groups[0].rules[0].labelz: unknown field',
    ]);
  });

  test('wrong types, enum values and missing required fields are refused too', async () => {
    const objs = rendered.get('cpu-dev')!;
    const js = structuredClone(jobSet(objs));
    js.spec.failurePolicy.maxRestarts = 'three';
    js.spec.successPolicy.operator = 'Most';
    js.spec.replicatedJobs[0].template.spec.template.spec.restartPolicy = 'Sometimes';
    delete js.spec.replicatedJobs[1].template.spec.template.spec.containers[0].name;
    const errors = await strictErrors(js);
    for (const want of [
      /failurePolicy\.maxRestarts: must be an integer/,
      /successPolicy\.operator: "Most" is not one of/,
      /restartPolicy: "Sometimes" is not one of/,
      /containers\[0\]\.name: required field missing/,
    ])
      assert.ok(
        errors.some((e) => want.test(e)),
        `${want}: ${errors.join('\n')}`,
      );
    const pdb = structuredClone(objs.find((o) => o.kind === 'PodDisruptionBudget')!);
    pdb.spec.maxUnavailable = true;
    assert.ok((await strictErrors(pdb)).some((e) => /maxUnavailable/.test(e)));
  });

  test('the job is a JobSet: the coordinator decides success, failures restart it, workers get DNS hostnames', () => {
    for (const [overlay, objs] of rendered) {
      const js = jobSet(objs);
      assert.equal(js.apiVersion, 'jobset.x-k8s.io/v1alpha2');
      assert.deepEqual(
        js.spec.successPolicy,
        { operator: 'All', targetReplicatedJobs: ['coordinator'] },
        overlay,
      );
      assert.ok(js.spec.failurePolicy.maxRestarts >= 1 && js.spec.failurePolicy.maxRestarts <= 10, overlay);
      // A usage error (exit 2) fails its Job through the podFailurePolicy (reason PodFailurePolicy), then the JobSet.
      const rule = js.spec.failurePolicy.rules.find((r: K8sObject) => r.action === 'FailJobSet');
      assert.deepEqual(rule.onJobFailureReasons, ['PodFailurePolicy'], overlay);
      assert.equal(js.spec.network.enableDNSHostnames, true, overlay);
      assert.equal(js.spec.network.publishNotReadyAddresses, true, `${overlay}: peers resolve before ready`);
      assert.equal(js.spec.network.subdomain, undefined, `${overlay}: the subdomain is the JobSet name`);
      assert.ok(js.spec.ttlSecondsAfterFinished > 0, overlay);
      assert.deepEqual(
        js.spec.replicatedJobs.map((r: K8sObject) => r.name),
        ['coordinator', 'workers'],
        `${overlay}: the JSON patches in the overlays index replicatedJobs (1 = workers)`,
      );
      const coord = replicatedJob(objs, 'coordinator');
      assert.equal(coord.replicas, 1);
      assert.equal(coord.template.spec.parallelism, 1, `${overlay}: never two coordinators`);
      assert.equal(coord.template.spec.completions, 1);
      const workers = replicatedJob(objs, 'workers');
      assert.equal(workers.replicas, 1, 'one Job of workers, one pod per worker');
      assert.equal(workers.template.spec.completionMode, 'Indexed', 'stable hostnames <job>-<index>');
      assert.equal(workers.template.spec.completions, workers.template.spec.parallelism);
      for (const rj of [coord, workers]) {
        const job = rj.template.spec;
        const where = `${overlay} ${rj.name}`;
        assert.equal(job.podReplacementPolicy, 'Failed', `${where}: no new pod while the old terminates`);
        assert.ok(job.backoffLimit >= 1 && job.backoffLimit <= 20, `${where}: backoffLimit`);
        assert.equal(job.template.spec.restartPolicy, 'Never', `${where}: podFailurePolicy needs Never`);
        const rules = job.podFailurePolicy.rules as K8sObject[];
        const container = job.template.spec.containers[0].name;
        assert.ok(
          rules.some(
            (r) =>
              r.action === 'FailJob' &&
              r.onExitCodes?.containerName === container &&
              r.onExitCodes.values.includes(2),
          ),
          `${where}: a usage error is final`,
        );
        assert.ok(
          rules.some(
            (r) =>
              r.action === 'Ignore' &&
              r.onPodConditions?.some((c: K8sObject) => c.type === 'DisruptionTarget'),
          ),
          `${where}: evictions and preemptions do not count as failures`,
        );
      }
    }
  });

  test('exit code 2, which the podFailurePolicy treats as final, is what the CLI returns for a usage error', async () => {
    const sink = { write: () => true } as unknown as NodeJS.WritableStream;
    for (const argv of [
      ['coordinator', '--min-workers', '3', '--max-workers', '2'],
      ['worker', '--join-timeout', 'soon'],
    ])
      assert.equal(await runCli(argv, { stdout: sink, stderr: sink }), 2, argv.join(' '));
  });

  test('a worker nobody admits gives up (exit 4, a counted failure), later than a coordinator may take to start', () => {
    for (const [overlay, objs] of rendered) {
      // Without it a worker with a wrong join token or job id would wait forever, Running and never Ready.
      const raw = envMap(worker(objs).c).get(RUNTIME_ENV.joinTimeout)?.value as string | undefined;
      assert.match(raw ?? '', /^[1-9]\d*$/, `${overlay}: workers set ${RUNTIME_ENV.joinTimeout} (seconds)`);
      const coord = containers(objs).find((x) => x.role === 'coordinator')!.c;
      const startup = coord.startupProbe.periodSeconds * coord.startupProbe.failureThreshold;
      assert.ok(
        Number(raw) > startup,
        `${overlay}: join timeout ${raw} s <= the coordinator's startup allowance ${startup} s: workers would give up on a coordinator that is still starting`,
      );
      // Exit 4 is not final (the coordinator may only be slow to come back): the Job retries it up to backoffLimit.
      const rules = replicatedJob(objs, 'workers').template.spec.podFailurePolicy.rules as K8sObject[];
      for (const r of rules) assert.ok(!r.onExitCodes?.values.includes(4), `${overlay}: exit 4 is counted`);
    }
  });

  test("min < max workers: a lost worker does not stall the job; max is the workers' parallelism", () => {
    for (const [overlay, objs] of rendered) {
      const workers = replicatedJob(objs, 'workers').template.spec.parallelism as number;
      const scale = objs.find(
        (o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('promptmesh-scale'),
      )!;
      const min = Number(scale.data[RUNTIME_ENV.minWorkers]);
      const max = Number(scale.data[RUNTIME_ENV.maxWorkers]);
      assert.equal(max, workers, `${overlay}: max workers = the workers' parallelism`);
      assert.ok(min >= 1 && min < max, `${overlay}: min ${min} < max ${max}`);
      const coord = containers(objs).find((x) => x.role === 'coordinator')!;
      assert.ok(coord.c.envFrom.some((e: K8sObject) => e.configMapRef?.name === scale.metadata.name));
    }
    assert.equal(replicatedJob(rendered.get('cpu-dev')!, 'workers').template.spec.parallelism, 2);
    assert.equal(replicatedJob(rendered.get('gpu')!, 'workers').template.spec.parallelism, 4);
  });

  test('names derive from the job: every object, reference, label and selector, so two jobs share a namespace', () => {
    const names = new Map<string, string>();
    for (const [overlay, objs] of rendered) {
      const job = jobSet(objs).metadata.labels[JOB_LABEL] as string;
      assert.ok(job, `${overlay}: the job label`);
      const suffix = `-${job}`;
      for (const o of objs) {
        const where = `${overlay} ${o.kind}/${o.metadata.name}`;
        assert.ok(o.metadata.name.endsWith(suffix), `${where}: named after the job (${suffix})`);
        assert.equal(o.metadata.labels?.[JOB_LABEL], job, `${where}: job label`);
        assert.equal(o.metadata.namespace, 'promptmesh', `${where}: both jobs share the namespace`);
        const key = `${o.kind}/${o.metadata.name}`;
        assert.ok(
          !names.has(key),
          `${key} is in both ${names.get(key)} and ${overlay}: the jobs would collide`,
        );
        names.set(key, overlay);
      }
      assert.ok(
        !objs.some((o) => o.kind === 'Namespace'),
        `${overlay}: deleting one job must not delete the namespace`,
      );
      // Every pod carries the job label, every selector asks for it.
      for (const t of podTemplates(objs))
        assert.equal(t.metadata.labels[JOB_LABEL], job, `${overlay} ${t.owner}`);
      const selectors: [string, K8sObject][] = [];
      for (const o of objs) {
        const at = `${o.kind}/${o.metadata.name}`;
        if (o.kind === 'Service') selectors.push([at, o.spec.selector]);
        if (o.kind === 'StatefulSet' || o.kind === 'PodDisruptionBudget')
          selectors.push([at, o.spec.selector.matchLabels]);
        if (o.kind !== 'NetworkPolicy') continue;
        selectors.push([at, o.spec.podSelector.matchLabels]);
        for (const r of o.spec.ingress)
          for (const f of r.from) {
            if (f.podSelector?.matchLabels) selectors.push([`${at} from`, f.podSelector.matchLabels]);
            // Prometheus is matched by expression: its pods carry no job label.
            else if (f.podSelector)
              assert.ok(
                f.podSelector.matchExpressions,
                `${overlay} ${at}: an empty podSelector admits every pod`,
              );
          }
      }
      for (const [where, sel] of selectors) {
        assert.equal(sel[JOB_LABEL], job, `${overlay} ${where}: selects pods of every job`);
        assert.ok(
          podTemplates(objs).some((t) => Object.entries(sel).every(([k, v]) => t.metadata.labels[k] === v)),
          `${overlay} ${where} selects no pod of the job`,
        );
      }
      // Every reference names an object of this job.
      const has = (kind: string, name: string) =>
        objs.some((o) => o.kind === kind && o.metadata.name === name);
      for (const { owner, pod } of podTemplates(objs)) {
        const where = `${overlay} ${owner}`;
        for (const v of pod.volumes ?? []) {
          if (v.configMap) assert.ok(has('ConfigMap', v.configMap.name), `${where}: ${v.configMap.name}`);
          if (v.secret) assert.ok(has('Secret', v.secret.secretName), `${where}: ${v.secret.secretName}`);
          if (v.persistentVolumeClaim)
            assert.ok(has('PersistentVolumeClaim', v.persistentVolumeClaim.claimName), `${where}: claim`);
        }
        for (const c of pod.containers as K8sObject[]) {
          for (const e of c.envFrom ?? [])
            assert.ok(has('ConfigMap', e.configMapRef.name), `${where}: envFrom`);
          for (const e of c.env ?? []) {
            const ref = e.valueFrom?.secretKeyRef;
            if (ref) assert.ok(has('Secret', ref.name), `${where}: ${e.name} from ${ref.name}`);
          }
          const nats = envMap(c).get(NATS_ENV.url)?.value;
          if (nats) {
            // The job's own NATS; nats.js dials the default port 4222 when the URL has none.
            const url = new URL(nats);
            assert.ok(has('Service', url.hostname), `${where}: NATS_URL ${nats} names no Service of the job`);
            const svc = objs.find((o) => o.kind === 'Service' && o.metadata.name === url.hostname)!;
            assert.equal(
              Number(url.port || 4222),
              svc.spec.ports.find((p: K8sObject) => p.name === 'client').port,
            );
          }
        }
      }
      const sts = objs.find((o) => o.kind === 'StatefulSet')!;
      assert.ok(has('Service', sts.spec.serviceName), `${overlay}: StatefulSet serviceName`);
    }
  });

  test('workers: the DNS hostname is the worker id and the address peers dial', () => {
    for (const [overlay, objs] of rendered) {
      const env = envMap(worker(objs).c);
      const ref = (name: string) => env.get(name)?.valueFrom?.fieldRef?.fieldPath;
      // JobSet pods are <jobset>-<replicatedJob>-<jobIndex>-<podIndex> in the subdomain <jobset>; the Job's name is
      // <jobset>-<replicatedJob>-<jobIndex>, so hostname = $(JOB_NAME)-$(POD_INDEX).
      assert.equal(ref('JOBSET_NAME'), "metadata.labels['jobset.sigs.k8s.io/jobset-name']");
      assert.equal(ref('JOB_NAME'), "metadata.labels['batch.kubernetes.io/job-name']");
      assert.equal(ref('POD_INDEX'), "metadata.annotations['batch.kubernetes.io/job-completion-index']");
      assert.equal(ref('POD_NAMESPACE'), 'metadata.namespace');
      assert.equal(env.get(RUNTIME_ENV.workerId)!.value, '$(JOB_NAME)-$(POD_INDEX)', overlay);
      assert.equal(
        env.get(RUNTIME_ENV.advertise)!.value,
        `$(JOB_NAME)-$(POD_INDEX).$(JOBSET_NAME).$(POD_NAMESPACE).svc:${COLLECTIVE_PORT}`,
        overlay,
      );
      // $(VAR) expands only variables defined earlier in the list.
      const order = [...env.keys()];
      for (const [k, uses] of [
        [RUNTIME_ENV.workerId, ['JOB_NAME', 'POD_INDEX']],
        [RUNTIME_ENV.advertise, ['JOB_NAME', 'POD_INDEX', 'JOBSET_NAME', 'POD_NAMESPACE']],
      ] as const)
        for (const u of uses) assert.ok(order.indexOf(u) < order.indexOf(k), `${overlay}: ${u} before ${k}`);
      assert.equal(env.get(RUNTIME_ENV.listen)!.value, `0.0.0.0:${COLLECTIVE_PORT}`);
      assert.equal(
        worker(objs).c.ports.find((p: K8sObject) => p.name === 'collective').containerPort,
        COLLECTIVE_PORT,
      );
    }
    // The TLS certificate's name matches the addresses: *.<jobset>.<namespace>.svc.
    const san = `*.${jobSet(rendered.get('gpu')!).metadata.name}.promptmesh.svc`;
    const text = fs.readFileSync(path.join(ROOT, 'k8s', 'overlays', 'gpu', 'kustomization.yaml'), 'utf8');
    assert.ok(text.includes(san), `the gpu overlay names the certificate's ${san}`);
    const docs = fs.readFileSync(path.join(ROOT, 'docs', 'kubernetes.md'), 'utf8');
    assert.ok(docs.includes(`DNS:${san}`), 'docs/kubernetes.md makes that certificate');
  });

  test('no pod mounts a service account token; a PodDisruptionBudget takes workers one at a time', () => {
    for (const [overlay, objs] of rendered) {
      for (const t of podTemplates(objs))
        assert.equal(t.pod.automountServiceAccountToken, false, `${overlay} ${t.owner}`);
      const pdbs = objs.filter((o) => o.kind === 'PodDisruptionBudget');
      assert.equal(pdbs.length, 1, overlay);
      const sel = Object.entries(pdbs[0]!.spec.selector.matchLabels);
      assert.equal(pdbs[0]!.spec.maxUnavailable, 1, overlay);
      const labels = (role: string) => podTemplates(objs).find((t) => t.role === role)!.metadata.labels;
      assert.ok(
        sel.every(([k, v]) => labels('workers')[k] === v),
        `${overlay}: the budget selects the workers`,
      );
      assert.ok(!sel.every(([k, v]) => labels('coordinator')[k] === v), `${overlay}: not the coordinator`);
    }
  });

  test('Kueue admits the GPU job as one workload from a queue that exists and can hold it', () => {
    const objs = rendered.get('gpu')!;
    const queue = jobSet(objs).metadata.labels['kueue.x-k8s.io/queue-name'];
    assert.ok(queue, 'the gpu JobSet names its Kueue queue');
    const local = kueue.find((o) => o.kind === 'LocalQueue' && o.metadata.name === queue);
    assert.ok(local, `k8s/kueue/queues.yaml has LocalQueue ${queue}`);
    assert.equal(local.metadata.namespace, jobSet(objs).metadata.namespace);
    const cq = kueue.find((o) => o.kind === 'ClusterQueue' && o.metadata.name === local.spec.clusterQueue);
    assert.ok(cq, `ClusterQueue ${local.spec.clusterQueue}`);
    const flavors = new Set(kueue.filter((o) => o.kind === 'ResourceFlavor').map((o) => o.metadata.name));
    const quota = new Map<string, number>();
    for (const g of cq.spec.resourceGroups)
      for (const f of g.flavors) {
        assert.ok(flavors.has(f.name), `ResourceFlavor ${f.name}`);
        for (const r of f.resources) quota.set(r.name, Number(r.nominalQuota));
      }
    // Kueue admits the whole JobSet or nothing: its GPU requests must fit the quota, or it waits forever.
    const gpus =
      (replicatedJob(objs, 'workers').template.spec.parallelism as number) *
      Number(worker(objs).c.resources.limits['nvidia.com/gpu']);
    assert.ok(
      (quota.get('nvidia.com/gpu') ?? 0) >= gpus,
      `quota ${quota.get('nvidia.com/gpu')} GPUs < ${gpus}`,
    );
    // The label is on the JobSet (Kueue reads it there); the cpu-dev job runs without Kueue.
    assert.equal(jobSet(rendered.get('cpu-dev')!).metadata.labels['kueue.x-k8s.io/queue-name'], undefined);
  });

  test('GPU workers ask for a GPU, run the GPU image and backend, and use mutual TLS', () => {
    const objs = rendered.get('gpu')!;
    const w = worker(objs);
    assert.equal(w.c.resources.limits['nvidia.com/gpu'], 1);
    assert.equal(w.c.image, 'promptmesh:gpu');
    assert.ok(w.pod.tolerations.some((t: K8sObject) => t.key === 'nvidia.com/gpu'));
    const env = Object.fromEntries((w.c.env as K8sObject[]).map((e) => [e.name, e.value]));
    assert.equal(env[BACKEND_ENV], 'node-gpu');
    // The device plugin isolates the pod's one GPU; a CUDA_VISIBLE_DEVICES of ours could only point past it.
    for (const k of ['CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES']) assert.equal(env[k], undefined, k);
    // TF32 off, explicitly and as the code's own default; with it set, PROMPTMESH_ALLOW_TF32 would do nothing.
    assert.equal(env.NVIDIA_TF32_OVERRIDE, '0');
    assert.equal(env.NVIDIA_TF32_OVERRIDE, nativeRuntimeEnv({}).NVIDIA_TF32_OVERRIDE);
    assert.equal(env.PROMPTMESH_ALLOW_TF32, undefined);
    const tlsMount = w.c.volumeMounts.find((m: K8sObject) => m.name === 'tls').mountPath;
    for (const k of [RUNTIME_ENV.tlsCert, RUNTIME_ENV.tlsKey, RUNTIME_ENV.tlsCa])
      assert.ok(env[k].startsWith(`${tlsMount}/`), k);
    const secret = find(
      objs,
      'Secret',
      w.pod.volumes.find((v: K8sObject) => v.name === 'tls').secret.secretName,
    );
    for (const f of ['tls.crt', 'tls.key', 'ca.crt']) assert.ok(secret.data[f], f);
    assert.equal(worker(rendered.get('cpu-dev')!).c.resources.limits['nvidia.com/gpu'], undefined);
    const coord = containers(objs).find((x) => x.role === 'coordinator')!;
    assert.equal(coord.c.resources.limits['nvidia.com/gpu'], undefined, 'the coordinator needs no GPU');
  });

  test('workers name their backend, size TensorFlow to the pod CPU request and keep malloc buffers', () => {
    const backends = { 'cpu-dev': 'node', gpu: 'node-gpu' } as const;
    for (const [overlay, objs] of rendered) {
      const w = worker(objs);
      const env = envMap(w.c);
      const backend = env.get(BACKEND_ENV)?.value as string;
      assert.equal(backend, backends[overlay as keyof typeof backends], `${overlay}: explicit backend`);
      assert.equal(parseBackendRequest(backend, overlay), backend);
      // Downward API: the container's own CPU request, in whole CPUs (a fractional request rounds up).
      const ref = env.get('TF_NUM_INTRAOP_THREADS')?.valueFrom?.resourceFieldRef;
      assert.ok(ref, `${overlay}: TF_NUM_INTRAOP_THREADS must come from the CPU request`);
      assert.equal(ref.containerName, w.c.name, overlay);
      assert.equal(ref.resource, 'requests.cpu', overlay);
      assert.equal(String(ref.divisor), '1', overlay);
      const cpu = String(w.c.resources.requests.cpu);
      const threads = Math.ceil(cpu.endsWith('m') ? Number(cpu.slice(0, -1)) / 1000 : Number(cpu));
      assert.ok(threads >= 1, `${overlay}: cpu request ${cpu}`);
      assert.equal(
        threads,
        overlay === 'gpu' ? 4 : 1,
        `${overlay}: ${cpu} CPUs -> ${threads} intra-op threads`,
      );
      assert.match(env.get('TF_NUM_INTEROP_THREADS')?.value ?? '', /^[1-9]\d*$/, overlay);
      // Each entry is a value or a reference, never both.
      for (const e of env.values())
        assert.ok(!(e.value !== undefined && e.valueFrom), `${overlay}: ${e.name}`);
      for (const [k, v] of Object.entries(MALLOC_ENV)) assert.equal(env.get(k)?.value, v, `${overlay}: ${k}`);
    }
  });

  test('ports, env names, commands and flags agree with the code', () => {
    const podEnv = new Set(['JOBSET_NAME', 'JOB_NAME', 'POD_INDEX', 'POD_NAMESPACE']);
    for (const [overlay, objs] of rendered) {
      for (const { owner, c } of containers(objs)) {
        if (c.image.startsWith('nats')) continue;
        const where = `${overlay} ${owner}`;
        checkArgs(where, c.args);
        const env = envMap(c);
        for (const name of env.keys()) {
          if (podEnv.has(name)) continue;
          assert.ok(
            KNOWN_ENV.has(name) || NATIVE_ENV.has(name),
            `${where}: env ${name} is not read by promptmesh nor by its native backend`,
          );
        }
        const metricsPort = c.ports.find((p: K8sObject) => p.name === 'metrics').containerPort;
        assert.equal(metricsPort, DEFAULT_CLUSTER_METRICS_PORT);
        assert.equal(env.get(METRICS_ENV.port)!.value, String(metricsPort), where);
        assert.equal(
          env.get(METRICS_ENV.host)!.value,
          '0.0.0.0',
          `${where}: metrics must be reachable from Prometheus`,
        );
        // Probes hit the real endpoints on the metrics port.
        for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
          assert.ok(c[probe], `${where} ${probe}`);
        assert.equal(c.livenessProbe.httpGet.path, '/healthz');
        assert.equal(c.readinessProbe.httpGet.path, '/readyz');
        assert.equal(c.livenessProbe.httpGet.port, 'metrics');
        // The job config is mounted where PROMPTMESH_CONFIG points, from the job ConfigMap.
        const config = env.get(RUNTIME_ENV.config)!.value as string;
        const mount = c.volumeMounts.find((m: K8sObject) => config.startsWith(`${m.mountPath}/`));
        assert.ok(mount, `${where}: nothing mounted at ${config}`);
      }
      const job = objs.find((o) => o.kind === 'ConfigMap' && o.data?.['job.json'])!;
      const parsed = parseJobConfig(JSON.parse(job.data['job.json']), {
        source: 'k8s job.json',
        baseDir: '/',
      });
      // The images put the package at /app: the shipped backbone the job names is there.
      assert.ok(parsed.backbone.checkpoint.startsWith('/app/assets/'));
      assert.ok(fs.existsSync(path.join(ROOT, parsed.backbone.checkpoint.slice('/app/'.length))));
    }
  });

  test('security contexts: non-root, read-only root filesystem, /tmp from an emptyDir', () => {
    for (const [overlay, objs] of rendered) {
      for (const { owner, pod, c } of containers(objs)) {
        const where = `${overlay} ${owner}`;
        assert.equal(pod.securityContext.runAsNonRoot, true, where);
        assert.ok(pod.securityContext.runAsUser > 0, where);
        assert.equal(c.securityContext.readOnlyRootFilesystem, true, where);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false, where);
        assert.deepEqual(c.securityContext.capabilities.drop, ['ALL'], where);
        if (!c.image.startsWith('nats')) {
          const tmpMount = c.volumeMounts.find((m: K8sObject) => m.mountPath === '/tmp');
          assert.ok(tmpMount, `${where}: no writable /tmp`);
          assert.ok(pod.volumes.find((v: K8sObject) => v.name === tmpMount.name).emptyDir, where);
          assert.equal(pod.securityContext.runAsUser, 10001, `${where}: the images' user`);
        }
      }
      const pvc = objs.find((o) => o.kind === 'PersistentVolumeClaim')!;
      assert.ok(pvc.spec.resources.requests.storage);
    }
  });

  test("NetworkPolicy: workers<->workers on the collective port, the job's pods->its NATS, Prometheus->metrics", () => {
    for (const [overlay, objs] of rendered) {
      const np = (component: string) =>
        objs.find(
          (o) =>
            o.kind === 'NetworkPolicy' &&
            o.spec.podSelector.matchLabels['app.kubernetes.io/component'] === component,
        )!;
      const w = np('worker');
      const ports = (w.spec.ingress as K8sObject[]).flatMap((r) => r.ports.map((p: K8sObject) => p.port));
      assert.deepEqual(ports.sort(), [COLLECTIVE_PORT, DEFAULT_CLUSTER_METRICS_PORT].sort(), overlay);
      assert.equal(
        w.spec.ingress[0].from[0].podSelector.matchLabels['app.kubernetes.io/component'],
        'worker',
      );
      const nats = np('nats');
      assert.equal(nats.spec.ingress[0].ports[0].port, 4222);
      assert.equal(np('coordinator').spec.ingress[0].ports[0].port, DEFAULT_CLUSTER_METRICS_PORT);
      for (const p of [w, nats, np('coordinator')]) {
        const prom = (p.spec.ingress as K8sObject[]).find((r) => r.from[0].namespaceSelector);
        assert.ok(prom, `${overlay} ${p.metadata.name}: Prometheus may scrape`);
        assert.deepEqual(prom.from[0].podSelector.matchExpressions, [
          { key: 'app.kubernetes.io/name', operator: 'In', values: ['prometheus'] },
        ]);
      }
    }
  });
});

describe('k8s monitoring (one per namespace, for every job)', () => {
  test('PodMonitors select the coordinator and worker pods of every job and label series with the job', () => {
    for (const [overlay, objs] of rendered) {
      for (const role of ['coordinator', 'workers']) {
        const t = podTemplates(objs).find((x) => x.role === role)!;
        const monitors = monitoring.filter(
          (m) =>
            m.kind === 'PodMonitor' &&
            Object.entries(m.spec.selector.matchLabels).every(([k, v]) => t.metadata.labels[k] === v),
        );
        assert.equal(monitors.length, 1, `${overlay} ${role}: one PodMonitor`);
        const m = monitors[0]!;
        assert.equal(m.spec.selector.matchLabels[JOB_LABEL], undefined, 'not tied to one job');
        for (const ep of m.spec.podMetricsEndpoints) {
          assert.ok(
            t.pod.containers[0].ports.some((p: K8sObject) => p.name === ep.port),
            `port ${ep.port}`,
          );
          assert.equal(ep.path, '/metrics');
          assert.match(ep.interval, /^\d+s$/);
          // The pod label promptmesh.dev/job, as Prometheus' service discovery sanitizes it, -> promptmesh_job.
          const source = `__meta_kubernetes_pod_label_${JOB_LABEL.replace(/[^a-zA-Z0-9_]/g, '_')}`;
          assert.ok(
            ep.relabelings.some(
              (r: K8sObject) => r.targetLabel === 'promptmesh_job' && r.sourceLabels[0] === source,
            ),
          );
        }
      }
    }
  });

  test('the dashboard ConfigMap is deploy/grafana/promptmesh.json, labelled for the Grafana sidecar', () => {
    const cm = find(monitoring, 'ConfigMap', 'promptmesh-dashboard');
    assert.equal(cm.metadata.labels.grafana_dashboard, '1');
    assert.equal(
      cm.data['promptmesh.json'],
      fs.readFileSync(path.join(ROOT, 'deploy', 'grafana', 'promptmesh.json'), 'utf8'),
      'k8s/monitoring/promptmesh-dashboard.json differs from deploy/grafana/promptmesh.json: copy it over',
    );
    // One dashboard for every job (it has a job variable), not one per job.
    for (const objs of rendered.values()) assert.ok(!objs.some((o) => o.metadata.labels?.grafana_dashboard));
  });
});

describe('images and the compose stack', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

  test('the images install what the entry point needs and run it as a non-root user', () => {
    const bin = pkg.bin.promptmesh as string;
    assert.ok(fs.existsSync(path.join(ROOT, bin)), `${bin} (package.json bin) is not built`);
    for (const file of ['Dockerfile', 'Dockerfile.gpu']) {
      const text = fs.readFileSync(path.join(ROOT, 'deploy', file), 'utf8');
      assert.match(
        text,
        new RegExp(`ln -s /app/${bin.replaceAll('.', '\\.')} /usr/local/bin/promptmesh`),
        file,
      );
      assert.match(text, /^ENTRYPOINT \["promptmesh"\]$/m, file);
      assert.match(text, /^USER 10001:10001$/m, file);
      assert.match(text, /^WORKDIR \/app$/m, file);
      assert.ok((text.match(/^FROM /gm) ?? []).length >= 2, `${file} is multi-stage`);
      assert.match(text, new RegExp(`${METRICS_ENV.port}=${DEFAULT_CLUSTER_METRICS_PORT}`), file);
      assert.match(text, new RegExp(`${RUNTIME_ENV.listen}=0\\.0\\.0\\.0:${COLLECTIVE_PORT}`), file);
      for (const dir of text.matchAll(/^COPY (?!--from)(\S+) /gm))
        assert.ok(fs.existsSync(path.join(ROOT, dir[1]!)), `${file} copies ${dir[1]}, which does not exist`);
    }
    for (const file of ['Dockerfile', 'Dockerfile.gpu']) {
      const text = fs.readFileSync(path.join(ROOT, 'deploy', file), 'utf8');
      assert.match(text, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m, file);
    }
  });

  test('the images build the native backend with scripts/native-backend.sh and keep its cache path', () => {
    const variants = [
      { file: 'Dockerfile', variant: 'cpu', pkgName: '@tensorflow/tfjs-node' },
      { file: 'Dockerfile.gpu', variant: 'gpu', pkgName: '@tensorflow/tfjs-node-gpu' },
    ];
    for (const { file, variant, pkgName } of variants) {
      const text = fs.readFileSync(path.join(ROOT, 'deploy', file), 'utf8');
      assert.ok(pkg.optionalDependencies[pkgName], `${pkgName} is in package.json`);
      const stages = dockerStages(text);
      const native = stages.find((s) => s.name === 'native');
      assert.ok(native, `${file}: no native stage`);
      const runtime = stages.at(-1)!;
      assert.equal(runtime.name, 'runtime', file);
      // The binding is compiled for the Node (N-API version, glibc, libstdc++) of the image that runs it.
      assert.equal(native.from, runtime.from, `${file}: native and runtime stages use the same base`);
      // tfjs-node's install script downloads libtensorflow; npm must never run it.
      for (const m of text.matchAll(/npm (?:ci|install)\b[^\n]*/g))
        assert.match(m[0], /--ignore-scripts/, `${file}: ${m[0]}`);
      assert.match(
        native.text,
        new RegExp(
          `PROMPTMESH_NATIVE=${variant} PROMPTMESH_REQUIRE_NATIVE="\\$\\{PROMPTMESH_REQUIRE_NATIVE\\}" bash scripts/native-backend\\.sh`,
        ),
        file,
      );
      assert.match(
        text,
        /^ARG PROMPTMESH_REQUIRE_NATIVE=1$/m,
        `${file}: a failed native build fails the image`,
      );
      // Compilers and pip at build time only.
      assert.match(native.text, /apt-get install[^\n]* python3 python3-pip g\+\+ make/, file);
      assert.doesNotMatch(runtime.text, /apt-get/, `${file}: the runtime stage installs no build tools`);
      // node_modules/<pkg>/deps/lib is an absolute symlink into the cache: same path in both stages.
      const cache = dockerEnv(native.text).get('PROMPTMESH_CACHE');
      assert.ok(cache?.startsWith('/'), `${file}: PROMPTMESH_CACHE in the native stage`);
      assert.equal(dockerEnv(runtime.text).get('PROMPTMESH_CACHE'), cache, file);
      assert.ok(
        runtime.text.includes(`\nCOPY --from=native ${cache} ${cache}\n`),
        `${file}: copies ${cache}`,
      );
      assert.match(native.text, /^WORKDIR \/app$/m, file);
      assert.match(runtime.text, /^COPY --from=native \/app\/node_modules \.\/node_modules$/m, file);
      const env = dockerEnv(runtime.text);
      for (const [k, v] of Object.entries(MALLOC_ENV)) assert.equal(env.get(k), v, `${file}: ${k}`);
      // The runtime stage loads this variant's binding (after the copies) when the native backend is required.
      if (variant === 'cpu') {
        const run = /promptmesh (model run [^\n>;]*)/.exec(runtime.text)![1]!.trim().split(/\s+/);
        const flags = commandFlags('model run');
        for (const a of run.slice(2)) if (a.startsWith('--')) assert.ok(flags.has(a), `model run ${a}`);
        assert.equal(run[run.indexOf('--backend') + 1], 'node');
        const ckpt = run[run.indexOf('--checkpoint') + 1]!;
        assert.ok(fs.existsSync(path.join(ROOT, ckpt.slice('/app/'.length))), ckpt);
      } else {
        assert.ok(runtime.text.includes(`require.resolve('${pkgName}/package.json')`), file);
      }
      // Every COPY source is let through by the Dockerfile's own .dockerignore (BuildKit reads <file>.dockerignore).
      const allowed = fs
        .readFileSync(path.join(ROOT, 'deploy', `${file}.dockerignore`), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('!'));
      for (const m of text.matchAll(/^COPY (?!--from)(.+)$/gm)) {
        for (const src of m[1]!.trim().split(/\s+/).slice(0, -1))
          assert.ok(
            allowed.includes(`!${src}`) || allowed.includes(`!${src}/**`),
            `${file}: COPY ${src} is excluded by ${file}.dockerignore`,
          );
      }
    }
    const gpu = dockerEnv(
      dockerStages(fs.readFileSync(path.join(ROOT, 'deploy', 'Dockerfile.gpu'), 'utf8')).at(-1)!.text,
    );
    assert.equal(gpu.get(BACKEND_ENV), 'node-gpu', 'the GPU image fails loudly without its GPU backend');
    assert.match(gpu.get('NVIDIA_DRIVER_CAPABILITIES') ?? '', /\bcompute\b/);
    // `all` would hand every GPU to a container that asked for none; --gpus and the device plugin set it.
    assert.equal(gpu.get('NVIDIA_VISIBLE_DEVICES'), undefined);
    // TF32 is switched off by the code, so PROMPTMESH_ALLOW_TF32=1 at run time can still allow it.
    assert.equal(gpu.get('NVIDIA_TF32_OVERRIDE'), undefined);
    assert.equal(nativeRuntimeEnv({ PROMPTMESH_ALLOW_TF32: '1' }).NVIDIA_TF32_OVERRIDE, undefined);
  });

  test('compose: commands, env names, ports and Prometheus targets agree with the code', () => {
    const compose = parseYaml(fs.readFileSync(path.join(ROOT, 'deploy', 'compose.yaml'), 'utf8'), {
      merge: true,
    });
    const prom = parseYaml(
      fs.readFileSync(path.join(ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8'),
    );
    const targets = new Set<string>(
      prom.scrape_configs.flatMap((s: K8sObject) => s.static_configs.flatMap((c: K8sObject) => c.targets)),
    );
    const promptmesh = Object.entries(compose.services as Record<string, K8sObject>).filter(([, s]) =>
      s.image?.startsWith('promptmesh'),
    );
    assert.deepEqual(promptmesh.map(([n]) => n).sort(), ['coordinator', 'worker-0', 'worker-1']);
    for (const [name, s] of promptmesh) {
      checkArgs(`compose ${name}`, s.command);
      for (const k of Object.keys(s.environment))
        assert.ok(KNOWN_ENV.has(k), `compose ${name}: env ${k} is not read by promptmesh`);
      const port = s.environment[METRICS_ENV.port];
      assert.equal(port, String(DEFAULT_CLUSTER_METRICS_PORT));
      assert.ok(targets.has(`${name}:${port}`), `prometheus.yml does not scrape ${name}:${port}`);
      assert.ok(s.ports.some((p: string) => p.endsWith(`:${port}`)));
      if (name.startsWith('worker')) {
        assert.equal(s.environment[RUNTIME_ENV.workerId], name);
        assert.equal(s.environment[RUNTIME_ENV.advertise], `${name}:${COLLECTIVE_PORT}`);
        assert.equal(s.environment[RUNTIME_ENV.listen], `0.0.0.0:${COLLECTIVE_PORT}`);
      }
    }
    const workers = promptmesh.filter(([n]) => n.startsWith('worker')).length;
    assert.equal(compose.services.coordinator.environment[RUNTIME_ENV.minWorkers], String(workers));
    assert.deepEqual(compose.services.nats.command.slice(0, 1), ['-js']);
    // Grafana gets the provisioning folder and the dashboard where the provider looks.
    const provider = parseYaml(
      fs.readFileSync(
        path.join(ROOT, 'deploy', 'grafana', 'provisioning', 'dashboards', 'promptmesh.yaml'),
        'utf8',
      ),
    );
    const dashDir = provider.providers[0].options.path;
    assert.ok(
      compose.services.grafana.volumes.some(
        (v: string) => v === `./grafana/promptmesh.json:${dashDir}/promptmesh.json:ro`,
      ),
    );
    const datasource = parseYaml(
      fs.readFileSync(
        path.join(ROOT, 'deploy', 'grafana', 'provisioning', 'datasources', 'prometheus.yaml'),
        'utf8',
      ),
    );
    assert.equal(datasource.datasources[0].url, 'http://prometheus:9090');
  });
});
