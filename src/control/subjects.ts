/**
 * NATS subject names of the control plane. Every subject starts with `promptmesh.<job>.` so one job's traffic can
 * be permitted, mirrored or observed as a unit (`promptmesh.<job>.>`).
 */

const TOKEN = /^[A-Za-z0-9_-]+$/;

function jobToken(job: string): string {
  // A dot, space, '*' or '>' in a job id would change the subject's meaning.
  if (!TOKEN.test(job))
    throw new Error(`job id '${job}' cannot be used in a NATS subject: use letters, digits, '_' or '-'`);
  return job;
}

/** A bank version was committed (JSON: id, job, step, parent, method, metrics). */
export function bankVersionSubject(job: string): string {
  return `promptmesh.${jobToken(job)}.bank.version`;
}
