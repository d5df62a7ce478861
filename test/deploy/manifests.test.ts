/**
 * Kubernetes manifests, images and the compose stack, checked offline: both overlays render (kustomize-lite, and
 * the same result as `kubectl kustomize` where kubectl exists), every object validates against the Kubernetes
 * JSON schemas (kubernetes-models), the Prometheus Operator objects are checked structurally, and every port, env
 * name, command and flag the manifests use agrees with the code.
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
import { MALLOC_ENV } from '../../src/cli/worker-env.js';
import { parseJobConfig } from '../../src/config/job-config.js';
import { RUNTIME_ENV } from '../../src/config/runtime-env.js';
import { NATS_ENV } from '../../src/control/nats-connect.js';
import { DEFAULT_CLUSTER_METRICS_PORT, METRICS_ENV } from '../../src/telemetry/index.js';
import { type K8sObject, renderKustomization } from './kustomize-lite.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const KNOWN_ENV = new Set<string>([
  ...Object.values(RUNTIME_ENV),
  ...Object.values(NATS_ENV),
  ...Object.values(METRICS_ENV),
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

let tmp: string;
const rendered = new Map<string, K8sObject[]>();

function find(objs: K8sObject[], kind: string, name: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `${kind}/${name} is missing`);
  return o;
}

function containers(objs: K8sObject[]): { owner: string; pod: K8sObject; c: K8sObject }[] {
  return objs
    .filter((o) => o.spec?.template?.spec)
    .flatMap((o) =>
      (o.spec.template.spec.containers as K8sObject[]).map((c) => ({
        owner: `${o.kind}/${o.metadata.name}`,
        pod: o.spec.template.spec,
        c,
      })),
    );
}

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

before(() => {
  // The gpu overlay generates its TLS Secret from files the operator creates (never committed): use stand-ins.
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  fs.cpSync(path.join(ROOT, 'k8s'), path.join(tmp, 'k8s'), { recursive: true });
  const tls = path.join(tmp, 'k8s', 'overlays', 'gpu', 'tls');
  fs.mkdirSync(tls, { recursive: true });
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) fs.writeFileSync(path.join(tls, f), `stand-in ${f}\n`);
  for (const overlay of ['cpu-dev', 'gpu'])
    rendered.set(overlay, renderKustomization(path.join(tmp, 'k8s', 'overlays', overlay)));
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('k8s overlays', () => {
  test('kubectl kustomize renders the same objects', {
    skip: spawnSync('kubectl', ['version', '--client']).error
      ? 'skipped: kubectl not installed (kustomize-lite rendering is still checked)'
      : false,
  }, () => {
    for (const [overlay, objs] of rendered) {
      const r = spawnSync('kubectl', ['kustomize', path.join(tmp, 'k8s', 'overlays', overlay)], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      const theirs = parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject);
      const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
      assert.deepEqual(theirs.map(key).sort(), objs.map(key).sort(), overlay);
      for (const o of theirs)
        assert.deepEqual(
          objs.find((x) => key(x) === key(o)),
          o,
          `${overlay}: ${key(o)}`,
        );
    }
  });

  test('every built-in object validates against the Kubernetes schemas', async () => {
    for (const [overlay, objs] of rendered) {
      for (const o of objs) {
        if (o.apiVersion === 'monitoring.coreos.com/v1') continue;
        const group = o.apiVersion.includes('/') ? `${o.apiVersion}` : `${o.apiVersion}`;
        const mod = (await import(`kubernetes-models/${group}/${o.kind}`)) as Record<
          string,
          new (
            x: K8sObject,
          ) => { validate(): void }
        >;
        const Model = mod[o.kind];
        assert.ok(Model, `no schema for ${o.apiVersion} ${o.kind}`);
        assert.doesNotThrow(() => new Model(o).validate(), `${overlay}: ${o.kind}/${o.metadata.name}`);
      }
    }
  });

  test('a broken object fails schema validation (the check is real)', async () => {
    const { StatefulSet } = await import('kubernetes-models/apps/v1/StatefulSet');
    const sts = structuredClone(find(rendered.get('gpu')!, 'StatefulSet', 'promptmesh-worker'));
    sts.spec.template.spec.containers[0].ports[0].containerPort = '7070';
    assert.throws(() => new StatefulSet(sts).validate(), /containerPort must be integer/);
  });

  test('scaling is one number: worker replicas = the coordinator min/max workers', () => {
    for (const [overlay, objs] of rendered) {
      const replicas = find(objs, 'StatefulSet', 'promptmesh-worker').spec.replicas;
      const scale = find(objs, 'ConfigMap', 'promptmesh-scale').data;
      assert.equal(scale[RUNTIME_ENV.minWorkers], String(replicas), overlay);
      assert.equal(scale[RUNTIME_ENV.maxWorkers], String(replicas), overlay);
      const coord = containers(objs).find((x) => x.owner === 'Job/promptmesh-coordinator')!;
      assert.ok(coord.c.envFrom.some((e: K8sObject) => e.configMapRef?.name === 'promptmesh-scale'));
    }
    assert.equal(find(rendered.get('cpu-dev')!, 'StatefulSet', 'promptmesh-worker').spec.replicas, 2);
    assert.equal(find(rendered.get('gpu')!, 'StatefulSet', 'promptmesh-worker').spec.replicas, 4);
  });

  test('the coordinator is a Job: one pod, restarted only on failure, done when the job completes', () => {
    for (const [overlay, objs] of rendered) {
      const job = find(objs, 'Job', 'promptmesh-coordinator');
      assert.equal(job.apiVersion, 'batch/v1', overlay);
      // A Deployment restarts a coordinator that exited 0 after completing its job, forever (CrashLoopBackOff).
      assert.ok(
        !objs.some((o) => o.metadata.name === 'promptmesh-coordinator' && o.kind === 'Deployment'),
        `${overlay}: the coordinator must not also be a Deployment`,
      );
      assert.equal(job.spec.parallelism, 1, `${overlay}: never two coordinators`);
      assert.equal(job.spec.completions, 1, overlay);
      assert.equal(
        job.spec.podReplacementPolicy,
        'Failed',
        `${overlay}: no new pod while the old terminates`,
      );
      assert.ok(
        job.spec.backoffLimit >= 1 && job.spec.backoffLimit <= 10,
        `${overlay}: backoffLimit ${job.spec.backoffLimit}: a crash is retried (resume from the bank head), a repeating failure surfaces`,
      );
      const pod = job.spec.template.spec;
      assert.equal(pod.restartPolicy, 'OnFailure', overlay);
      assert.equal(
        job.spec.ttlSecondsAfterFinished,
        undefined,
        `${overlay}: keep the finished Job and its logs`,
      );
      const c = pod.containers.find((x: K8sObject) => x.name === 'coordinator');
      assert.deepEqual(c.args.slice(0, 1), ['coordinator']);
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) assert.ok(c[probe], probe);
      // The Service (metrics, ServiceMonitor) and the NetworkPolicy select the Job's pod by its labels.
      const labels = job.spec.template.metadata.labels;
      const svc = find(objs, 'Service', 'promptmesh-coordinator');
      for (const [k, v] of Object.entries(svc.spec.selector))
        assert.equal(labels[k], v, `Service selector ${k}`);
      const np = find(objs, 'NetworkPolicy', 'promptmesh-coordinator');
      for (const [k, v] of Object.entries(np.spec.podSelector.matchLabels))
        assert.equal(labels[k], v, `NetworkPolicy podSelector ${k}`);
      // Nothing a Job would reject: no selector of our own (the Job controller generates it), no Recreate strategy.
      assert.equal(job.spec.selector, undefined);
      assert.equal(job.spec.strategy, undefined);
      assert.equal(job.spec.replicas, undefined);
    }
  });

  test('a malformed coordinator Job fails schema validation (the Job schema is really checked)', async () => {
    const { Job } = await import('kubernetes-models/batch/v1/Job');
    const job = structuredClone(find(rendered.get('cpu-dev')!, 'Job', 'promptmesh-coordinator'));
    job.spec.backoffLimit = 'four';
    assert.throws(() => new Job(job).validate(), /backoffLimit must be integer/);
  });

  test('GPU workers ask for a GPU, run the GPU image and backend, and use mutual TLS', () => {
    const objs = rendered.get('gpu')!;
    const w = containers(objs).find((x) => x.owner === 'StatefulSet/promptmesh-worker')!;
    assert.equal(w.c.resources.limits['nvidia.com/gpu'], 1);
    assert.equal(w.c.image, 'promptmesh:gpu');
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
    const secret = find(objs, 'Secret', 'promptmesh-tls');
    for (const f of ['tls.crt', 'tls.key', 'ca.crt']) assert.ok(secret.data[f], f);
    assert.equal(
      containers(rendered.get('cpu-dev')!).find((x) => x.owner === 'StatefulSet/promptmesh-worker')!.c
        .resources.limits['nvidia.com/gpu'],
      undefined,
    );
  });

  test('workers name their backend, size TensorFlow to the pod CPU request and keep malloc buffers', () => {
    const backends = { 'cpu-dev': 'node', gpu: 'node-gpu' } as const;
    for (const [overlay, objs] of rendered) {
      const w = containers(objs).find((x) => x.owner === 'StatefulSet/promptmesh-worker')!;
      const env = new Map<string, K8sObject>((w.c.env as K8sObject[]).map((e) => [e.name, e]));
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
      // Each entry is a value or a reference, never both (a patch merging the two would be rejected).
      for (const e of env.values())
        assert.ok(!(e.value !== undefined && e.valueFrom), `${overlay}: ${e.name}`);
      for (const [k, v] of Object.entries(MALLOC_ENV)) assert.equal(env.get(k)?.value, v, `${overlay}: ${k}`);
    }
  });

  test('ports, env names, commands and flags agree with the code', () => {
    for (const [overlay, objs] of rendered) {
      for (const { owner, c } of containers(objs)) {
        if (c.image.startsWith('nats')) continue;
        const where = `${overlay} ${owner}`;
        checkArgs(where, c.args);
        const env = new Map<string, K8sObject>((c.env as K8sObject[]).map((e) => [e.name, e]));
        for (const name of env.keys()) {
          if (name === 'POD_NAME' || name === 'POD_NAMESPACE') continue;
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
        assert.equal(env.get(NATS_ENV.url)!.value, 'nats://nats:4222');
        assert.equal(
          find(objs, 'Service', 'nats').spec.ports.find((p: K8sObject) => p.name === 'client').port,
          4222,
        );
        assert.equal(env.get(RUNTIME_ENV.token)!.valueFrom.secretKeyRef.name, 'promptmesh-join-token');
        // Probes hit the real endpoints on the metrics port.
        assert.equal(c.livenessProbe.httpGet.path, '/healthz');
        assert.equal(c.readinessProbe.httpGet.path, '/readyz');
        assert.equal(c.livenessProbe.httpGet.port, 'metrics');
        // The job config is mounted where PROMPTMESH_CONFIG points, from the job ConfigMap.
        const config = env.get(RUNTIME_ENV.config)!.value as string;
        const mount = c.volumeMounts.find((m: K8sObject) => config.startsWith(`${m.mountPath}/`));
        assert.ok(mount, `${where}: nothing mounted at ${config}`);
        if (owner.includes('worker')) {
          assert.equal(env.get(RUNTIME_ENV.workerId)!.value, '$(POD_NAME)', 'worker id = pod name');
          assert.equal(env.get(RUNTIME_ENV.listen)!.value, `0.0.0.0:${COLLECTIVE_PORT}`);
          assert.match(
            env.get(RUNTIME_ENV.advertise)!.value,
            new RegExp(
              `^\\$\\(POD_NAME\\)\\.promptmesh-worker\\.\\$\\(POD_NAMESPACE\\)\\.svc:${COLLECTIVE_PORT}$`,
            ),
          );
          assert.equal(
            c.ports.find((p: K8sObject) => p.name === 'collective').containerPort,
            COLLECTIVE_PORT,
          );
          const svc = find(objs, 'Service', 'promptmesh-worker');
          assert.equal(svc.spec.clusterIP, 'None');
          assert.equal(svc.spec.publishNotReadyAddresses, true);
          assert.equal(find(objs, 'StatefulSet', 'promptmesh-worker').spec.serviceName, 'promptmesh-worker');
        }
      }
      const job = find(objs, 'ConfigMap', 'promptmesh-job');
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
      const pvc = find(objs, 'PersistentVolumeClaim', 'promptmesh-data');
      assert.ok(pvc.spec.resources.requests.storage);
    }
  });

  test('ServiceMonitor and PodMonitor select the metrics endpoints (structural check of the CRDs)', () => {
    for (const [overlay, objs] of rendered) {
      const sm = find(objs, 'ServiceMonitor', 'promptmesh-coordinator');
      assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
      const svc = objs.find(
        (o) =>
          o.kind === 'Service' &&
          Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v),
      );
      assert.ok(svc, `${overlay}: the ServiceMonitor selects no Service`);
      for (const ep of sm.spec.endpoints) {
        const port: K8sObject | undefined = svc.spec.ports.find((p: K8sObject) => p.name === ep.port);
        assert.ok(port, `ServiceMonitor port ${ep.port} is not on Service ${svc.metadata.name}`);
        assert.equal(port.port, DEFAULT_CLUSTER_METRICS_PORT);
        assert.equal(ep.path, '/metrics');
      }
      const pm = find(objs, 'PodMonitor', 'promptmesh-worker');
      const sts = objs.find(
        (o) =>
          o.kind === 'StatefulSet' &&
          Object.entries(pm.spec.selector.matchLabels).every(
            ([k, v]) => o.spec.template.metadata.labels?.[k] === v,
          ),
      );
      assert.ok(sts, `${overlay}: the PodMonitor selects no workload`);
      assert.equal(sts.metadata.name, 'promptmesh-worker');
      for (const ep of pm.spec.podMetricsEndpoints) {
        assert.ok(
          sts.spec.template.spec.containers[0].ports.some((p: K8sObject) => p.name === ep.port),
          `PodMonitor port ${ep.port}`,
        );
        assert.equal(ep.path, '/metrics');
      }
      for (const m of [sm, pm])
        for (const ep of m.spec.endpoints ?? m.spec.podMetricsEndpoints) assert.match(ep.interval, /^\d+s$/);
    }
  });

  test('NetworkPolicy: workers<->workers on the collective port, everyone->NATS, Prometheus->metrics', () => {
    const objs = rendered.get('gpu')!;
    const w = find(objs, 'NetworkPolicy', 'promptmesh-worker');
    const ports = (w.spec.ingress as K8sObject[]).flatMap((r) => r.ports.map((p: K8sObject) => p.port));
    assert.deepEqual(ports.sort(), [COLLECTIVE_PORT, DEFAULT_CLUSTER_METRICS_PORT].sort());
    assert.equal(w.spec.ingress[0].from[0].podSelector.matchLabels['app.kubernetes.io/component'], 'worker');
    const nats = find(objs, 'NetworkPolicy', 'nats');
    assert.deepEqual(nats.spec.ingress[0].from[0].podSelector, {});
    assert.equal(nats.spec.ingress[0].ports[0].port, 4222);
    const c = find(objs, 'NetworkPolicy', 'promptmesh-coordinator');
    assert.equal(c.spec.ingress[0].ports[0].port, DEFAULT_CLUSTER_METRICS_PORT);
  });

  test('the dashboard ConfigMap is deploy/grafana/promptmesh.json, labelled for the Grafana sidecar', () => {
    for (const objs of rendered.values()) {
      const cm = find(objs, 'ConfigMap', 'promptmesh-dashboard');
      assert.equal(cm.metadata.labels.grafana_dashboard, '1');
      assert.equal(
        cm.data['promptmesh.json'],
        fs.readFileSync(path.join(ROOT, 'deploy', 'grafana', 'promptmesh.json'), 'utf8'),
        'k8s/base/promptmesh-dashboard.json differs from deploy/grafana/promptmesh.json: copy it over',
      );
    }
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
